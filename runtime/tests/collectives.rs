//! The collective state machines of `dagwire_runtime::collectives`, on an in-memory loop
//! written here: every algorithm against the others and against closed forms, for 1 to
//! 9 ranks, with pieces delivered in order and in seeded shuffled orders, and with ranks
//! that join late (their pieces arrive before they joined).

// Loops run over rank numbers, which index several per-rank tables at once.
#![allow(clippy::needless_range_loop)]

use dagwire_runtime::collective::{
    AllReduceAlgorithm, AllToAllAlgorithm, CollectiveJoin, CollectiveKind, Contribution, DType, ReduceOp, Tree,
    block_range,
};
use dagwire_runtime::collectives::{Block, Body, Collectives, Piece, Segmenting};
use dagwire_runtime::message::{HEADER_BYTES, NO_CHUNK};
use dagwire_runtime::{ChunkId, Message, Payload, Rank};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A seeded xorshift generator: shuffles and test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// How the loop delivers pieces.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// In the order they were sent.
    Fifo,
    /// A random piece in flight next, from this seed.
    Shuffled(u64),
}

/// What one run of the loop leaves, per rank.
struct Outcome {
    /// Per rank, each collective that completed there, in order.
    done: Vec<Vec<(u64, Vec<Contribution>)>>,
    /// Per rank, pieces it sent.
    sent: Vec<usize>,
    /// Per rank, the distinct steps its pieces belonged to.
    steps: Vec<usize>,
    /// Every piece that moved.
    pieces: Vec<Piece>,
    /// Pieces that reached their rank before it joined their collective.
    early: usize,
}

/// The loop's state: every rank's collectives, what each still has to join, the
/// pieces in flight and what happened so far.
struct World {
    ranks: Vec<Collectives>,
    queues: Vec<VecDeque<CollectiveJoin>>,
    joined: Vec<BTreeSet<u64>>,
    steps: Vec<BTreeSet<(u64, u32)>>,
    flight: VecDeque<Piece>,
    out: Outcome,
}

impl World {
    /// Moves rank `r` on at `now`: its next join if `join_next`, its pieces into
    /// flight, its completions (each followed by its next join).
    fn settle(&mut self, r: usize, now: u64, mut join_next: bool) {
        loop {
            if join_next && let Some(j) = self.queues[r].pop_front() {
                self.joined[r].insert(j.id);
                self.ranks[r].join(now, j);
            }
            while let Some(piece) = self.ranks[r].poll_send() {
                assert_eq!(piece.src.index(), r);
                self.out.sent[r] += 1;
                self.steps[r].insert((piece.id, piece.step));
                self.flight.push_back(piece);
            }
            if let Some(e) = self.ranks[r].error() {
                panic!("{e}");
            }
            join_next = false;
            while let Some(done) = self.ranks[r].poll_done() {
                self.out.done[r].push(done);
                join_next = true;
            }
            if !join_next {
                return;
            }
        }
    }
}

/// Runs `p` ranks; rank `r` joins `joins[r]` in order, each as soon as its previous one
/// completed there (the ranks in `late` join their first only once nothing else
/// moves). Fails on any error, on a rank left unfinished and on a rank not idle.
fn run(p: usize, joins: Vec<Vec<CollectiveJoin>>, order: Order, late: &[usize], segmenting: Segmenting) -> Outcome {
    let expected: Vec<usize> = joins.iter().map(Vec::len).collect();
    let mut w = World {
        ranks: (0..p as u32).map(|r| Collectives::new(Rank(r), p, segmenting)).collect(),
        queues: joins.into_iter().map(Into::into).collect(),
        joined: vec![BTreeSet::new(); p],
        steps: vec![BTreeSet::new(); p],
        flight: VecDeque::new(),
        out: Outcome { done: vec![Vec::new(); p], sent: vec![0; p], steps: vec![0; p], pieces: Vec::new(), early: 0 },
    };
    let mut rng = Rng::new(match order {
        Order::Fifo => 0,
        Order::Shuffled(seed) => seed,
    });
    let mut waiting_late: Vec<usize> = late.to_vec();
    for r in (0..p).filter(|r| !late.contains(r)) {
        w.settle(r, 0, true);
    }
    let mut now = 1;
    loop {
        if w.flight.is_empty() {
            let Some(r) = waiting_late.pop() else { break };
            w.settle(r, now, true);
            continue;
        }
        let piece = match order {
            Order::Fifo => w.flight.pop_front().unwrap(),
            Order::Shuffled(_) => {
                let i = rng.below(w.flight.len());
                w.flight.swap_remove_back(i).unwrap()
            }
        };
        w.out.pieces.push(piece.clone());
        let dst = piece.dst.index();
        w.out.early += usize::from(!w.joined[dst].contains(&piece.id));
        w.ranks[dst].handle_piece(now, piece);
        w.settle(dst, now, false);
        now += 1;
    }
    for r in 0..p {
        assert_eq!(w.out.done[r].len(), expected[r], "r{r} finished {} of {}", w.out.done[r].len(), expected[r]);
        assert!(w.ranks[r].is_idle(), "r{r}: {}", w.ranks[r].summary());
        w.out.steps[r] = w.steps[r].len();
    }
    w.out
}

const ORDERS: [Order; 4] = [Order::Fifo, Order::Shuffled(1), Order::Shuffled(2), Order::Shuffled(3)];

fn ceil_log2(p: usize) -> usize {
    p.next_power_of_two().trailing_zeros() as usize
}

// ---------------------------------------------------------------------------------
// All-to-all-v
// ---------------------------------------------------------------------------------

/// What rank `r` contributes to `d` in collective `id`: zero to two messages, data of
/// varying sizes or control.
fn contribution(id: u64, r: usize, d: usize) -> Vec<Message> {
    let n = (r * 3 + d * 5 + id as usize) % 3;
    (0..n)
        .map(|i| {
            let chunk = ChunkId((id as u32 * 1000) + (r * 100 + d * 10 + i) as u32);
            if (r + d + i) % 4 == 3 {
                Message::control(7, chunk, r as u64)
            } else {
                let len = 1 + (r * 7 + d * 3 + i * 11) % 40;
                let bytes: Vec<u8> = (0..len).map(|k| (r * 31 + d * 17 + k) as u8).collect();
                Message::data(1, chunk, Payload::from_bytes(&bytes))
            }
        })
        .collect()
}

fn all_to_all(id: u64, p: usize, algorithm: AllToAllAlgorithm) -> Vec<Vec<CollectiveJoin>> {
    (0..p)
        .map(|r| {
            let sends = (0..p).filter(|&d| d != r).map(|d| (Rank(d as u32), contribution(id, r, d))).collect();
            vec![CollectiveJoin { id, kind: CollectiveKind::AllToAllV { algorithm }, sends }]
        })
        .collect()
}

/// (from, messages) of what a rank received, in rank order.
fn by_sender(received: &[Contribution]) -> Vec<(Rank, Vec<Message>)> {
    let mut v: Vec<(Rank, Vec<Message>)> = received.iter().map(|c| (c.from, c.messages.clone())).collect();
    v.sort_by_key(|(r, _)| *r);
    v
}

#[test]
fn pairwise_and_bruck_deliver_every_contribution_exactly_with_their_step_counts() {
    for p in 1..=9 {
        for order in ORDERS {
            for (algorithm, steps) in [(AllToAllAlgorithm::Pairwise, p - 1), (AllToAllAlgorithm::Bruck, ceil_log2(p))] {
                let label = format!("p={p} {algorithm:?} {order:?}");
                let out = run(p, all_to_all(4, p, algorithm), order, &[], Segmenting::Whole);
                for r in 0..p {
                    let (id, received) = &out.done[r][0];
                    assert_eq!(*id, 4);
                    let want: Vec<(Rank, Vec<Message>)> =
                        (0..p).filter(|&s| s != r).map(|s| (Rank(s as u32), contribution(4, s, r))).collect();
                    assert_eq!(by_sender(received), want, "{label} r{r}");
                    assert!(received.iter().all(|c| c.recv_ns >= c.sent_ns), "{label}");
                    assert_eq!((out.sent[r], out.steps[r]), (steps, steps), "{label} r{r}: pieces and steps");
                }
            }
        }
    }
}

#[test]
fn a_pairwise_piece_charges_its_contribution_s_bytes_and_bruck_sums_its_blocks() {
    let p = 5;
    let out = run(p, all_to_all(2, p, AllToAllAlgorithm::Pairwise), Order::Fifo, &[], Segmenting::Whole);
    for piece in &out.pieces {
        let Body::Messages(m) = &piece.body else { panic!("pairwise moves messages") };
        assert_eq!(m, &contribution(2, piece.src.index(), piece.dst.index()));
        assert_eq!(piece.bytes, dagwire_runtime::collective::wire_bytes(m));
    }
    let out = run(p, all_to_all(2, p, AllToAllAlgorithm::Bruck), Order::Fifo, &[], Segmenting::Whole);
    for piece in &out.pieces {
        let Body::Blocks(blocks) = &piece.body else { panic!("bruck moves blocks") };
        // Round k moves the blocks whose distance has bit k set: 2 of 4 distances for p = 5, rounds 0 and 1; 1 in round 2.
        assert_eq!(blocks.len(), if piece.step < 2 { 2 } else { 1 }, "{piece:?}");
        let sum: u64 = blocks.iter().map(|b| dagwire_runtime::collective::wire_bytes(&b.messages)).sum();
        assert_eq!(piece.bytes, sum);
    }
}

// ---------------------------------------------------------------------------------
// Neighbour all-to-all-v
// ---------------------------------------------------------------------------------

/// A random graph over `p` ranks: each ordered pair an edge with probability 1/3.
fn graph(p: usize, seed: u64) -> Vec<(Vec<Rank>, Vec<Rank>)> {
    let mut rng = Rng::new(seed);
    let mut g: Vec<(Vec<Rank>, Vec<Rank>)> = vec![(Vec::new(), Vec::new()); p];
    for s in 0..p {
        for d in 0..p {
            if s != d && rng.below(3) == 0 {
                g[s].1.push(Rank(d as u32));
                g[d].0.push(Rank(s as u32));
            }
        }
    }
    g
}

#[test]
fn a_neighbor_all_to_all_v_moves_exactly_the_graph_s_edges_and_isolated_ranks_finish_at_once() {
    for p in 1..=9 {
        for seed in 0..4 {
            let g = graph(p, seed);
            let joins: Vec<Vec<CollectiveJoin>> = (0..p)
                .map(|r| {
                    let (sources, destinations) = g[r].clone();
                    let sends = destinations.iter().map(|d| (*d, contribution(9, r, d.index()))).collect();
                    vec![CollectiveJoin {
                        id: 9,
                        kind: CollectiveKind::NeighborAllToAllV { sources, destinations },
                        sends,
                    }]
                })
                .collect();
            for order in ORDERS {
                let out = run(p, joins.clone(), order, &[], Segmenting::Whole);
                for r in 0..p {
                    let want: Vec<(Rank, Vec<Message>)> =
                        g[r].0.iter().map(|s| (*s, contribution(9, s.index(), r))).collect();
                    assert_eq!(by_sender(&out.done[r][0].1), want, "p={p} seed={seed} r{r}");
                    assert_eq!(out.sent[r], g[r].1.len(), "one piece per destination");
                }
            }
            // A rank without sources completes at its join, before anything moves.
            for r in (0..p).filter(|&r| g[r].0.is_empty()) {
                let mut c = Collectives::new(Rank(r as u32), p, Segmenting::Whole);
                c.join(0, joins[r][0].clone());
                assert!(c.poll_done().is_some(), "p={p} seed={seed} r{r}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Broadcast
// ---------------------------------------------------------------------------------

fn root_messages() -> Vec<Message> {
    let bytes: Vec<u8> = (0..5000).map(|i| (i * 7) as u8).collect();
    vec![Message::data(3, ChunkId(5), Payload::from_bytes(&bytes)), Message::control(4, NO_CHUNK, 99)]
}

#[test]
fn a_broadcast_reaches_every_member_from_its_tree_parent_whole_or_in_segments() {
    let trees = [Tree::Binomial, Tree::Chain { segment_bytes: 1000 }, Tree::Chain { segment_bytes: 1 << 20 }];
    for p in 1..=9 {
        for members in [(0..p).collect::<Vec<_>>(), (0..p).rev().step_by(2).collect()] {
            let members: Vec<Rank> = members.into_iter().map(|m| Rank(m as u32)).collect();
            for tree in trees {
                for segmenting in [Segmenting::Whole, Segmenting::Segments] {
                    let joins: Vec<Vec<CollectiveJoin>> = (0..p)
                        .map(|r| {
                            if !members.contains(&Rank(r as u32)) {
                                return Vec::new();
                            }
                            let kind = CollectiveKind::Broadcast { members: members.clone(), tree };
                            let root = members[0] == Rank(r as u32);
                            let sends = if root { vec![(Rank(r as u32), root_messages())] } else { Vec::new() };
                            vec![CollectiveJoin { id: 1, kind, sends }]
                        })
                        .collect();
                    for order in ORDERS {
                        let label = format!("p={p} {members:?} {tree:?} {segmenting:?} {order:?}");
                        let out = run(p, joins.clone(), order, &[], segmenting);
                        for (v, m) in members.iter().enumerate() {
                            let received = &out.done[m.index()][0].1;
                            match tree.parent(v) {
                                None => assert!(received.is_empty(), "{label}: the root receives nothing"),
                                Some(parent) => {
                                    assert_eq!(received.len(), 1, "{label}");
                                    assert_eq!(received[0].from, members[parent], "{label}: from the tree parent");
                                    assert_eq!(received[0].messages, root_messages(), "{label}");
                                }
                            }
                        }
                        let bytes = dagwire_runtime::collective::wire_bytes(&root_messages());
                        let per_edge = match (tree, segmenting) {
                            (Tree::Chain { segment_bytes }, Segmenting::Segments) => bytes.div_ceil(segment_bytes),
                            _ => 1,
                        };
                        assert_eq!(out.pieces.len() as u64, per_edge * (members.len() as u64 - 1), "{label}");
                        let charged: u64 = out.pieces.iter().map(|p| p.bytes).sum();
                        assert_eq!(charged, bytes * (members.len() as u64 - 1), "{label}: segments add up");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Fence
// ---------------------------------------------------------------------------------

fn fences(p: usize, id: u64) -> Vec<Vec<CollectiveJoin>> {
    (0..p).map(|_| vec![CollectiveJoin { id, kind: CollectiveKind::Fence, sends: Vec::new() }]).collect()
}

#[test]
fn a_dissemination_fence_takes_ceil_log2_p_rounds_and_waits_for_the_last_rank_to_join() {
    for p in 1..=9 {
        for order in ORDERS {
            let out = run(p, fences(p, 3), order, &[], Segmenting::Whole);
            for r in 0..p {
                assert!(out.done[r][0].1.is_empty());
                assert_eq!((out.sent[r], out.steps[r]), (ceil_log2(p), ceil_log2(p)), "p={p} r{r}");
            }
            assert!(out.pieces.iter().all(|piece| piece.bytes == HEADER_BYTES && piece.body == Body::Header));
        }
        // Every rank but the last joins and every piece that can move moves: nobody completes.
        let mut ranks: Vec<Collectives> =
            (0..p as u32).map(|r| Collectives::new(Rank(r), p, Segmenting::Whole)).collect();
        let mut flight = Vec::new();
        let mut now = 0;
        let mut pump = |ranks: &mut Vec<Collectives>, flight: &mut Vec<Piece>| {
            for c in ranks.iter_mut() {
                flight.extend(std::iter::from_fn(|| c.poll_send()));
            }
            while let Some(piece) = flight.pop() {
                now += 1;
                let dst = piece.dst.index();
                ranks[dst].handle_piece(now, piece);
                flight.extend(std::iter::from_fn(|| ranks[dst].poll_send()));
            }
        };
        for r in 0..p - 1 {
            ranks[r].join(0, fences(p, 3)[r][0].clone());
        }
        pump(&mut ranks, &mut flight);
        if p > 1 {
            assert!(ranks.iter_mut().all(|c| c.poll_done().is_none()), "p={p}: a rank passed the fence early");
            assert!(ranks[0].summary().contains("fence (dissemination)"), "{}", ranks[0].summary());
        }
        ranks[p - 1].join(0, fences(p, 3)[p - 1][0].clone());
        pump(&mut ranks, &mut flight);
        assert!(ranks.iter_mut().all(|c| c.poll_done().is_some()), "p={p}");
    }
}

// ---------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------

const ALL_REDUCE: [AllReduceAlgorithm; 3] =
    [AllReduceAlgorithm::Ring, AllReduceAlgorithm::RecursiveDoubling, AllReduceAlgorithm::BinomialTree];

/// Rank `r`'s vector of `n` elements: whole numbers, so sums are exact in any order.
fn whole_numbers(r: usize, n: usize) -> Vec<f64> {
    (0..n).map(|i| ((r + 1) * (i + 3) % 1000) as f64 - 250.0).collect()
}

fn payload_of(values: &[f64], dtype: DType) -> Payload {
    match dtype {
        DType::F64 => Payload::from_f64(values.to_vec()),
        DType::F32 => {
            let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            Payload::from_bytes(bytemuck::cast_slice(&v))
        }
    }
}

fn reduction(id: u64, kind: &CollectiveKind, vectors: &[Payload]) -> Vec<Vec<CollectiveJoin>> {
    vectors
        .iter()
        .enumerate()
        .map(|(r, v)| {
            let mut m = Message::data(9, ChunkId(r as u32), v.clone());
            m.arg = 42;
            vec![CollectiveJoin { id, kind: kind.clone(), sends: vec![(Rank(r as u32), vec![m])] }]
        })
        .collect()
}

/// The one result message each rank got, checked to come from itself.
fn results(out: &Outcome) -> Vec<Message> {
    out.done
        .iter()
        .enumerate()
        .map(|(r, done)| {
            let received = &done[0].1;
            assert_eq!(received.len(), 1);
            assert_eq!(received[0].from, Rank(r as u32), "a reduction's result comes from the rank itself");
            let m = received[0].messages[0].clone();
            assert_eq!((m.op, m.chunk, m.arg), (9, ChunkId(r as u32), 42), "the rank's own header comes back");
            m
        })
        .collect()
}

#[test]
fn every_all_reduce_algorithm_sums_whole_numbers_exactly_to_the_same_bytes_on_every_rank() {
    for p in 1..=9 {
        for n in [0, 1, 3, 10, 37] {
            let exact: Vec<f64> = (0..n).map(|i| (0..p).map(|r| whole_numbers(r, n)[i]).sum()).collect();
            for dtype in [DType::F64, DType::F32] {
                let vectors: Vec<Payload> = (0..p).map(|r| payload_of(&whole_numbers(r, n), dtype)).collect();
                let want = payload_of(&exact, dtype);
                for algorithm in ALL_REDUCE {
                    let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype, algorithm };
                    for order in ORDERS {
                        let label = format!("p={p} n={n} {dtype:?} {algorithm:?} {order:?}");
                        let out = run(p, reduction(1, &kind, &vectors), order, &[], Segmenting::Whole);
                        for (r, m) in results(&out).into_iter().enumerate() {
                            assert_eq!(m.payload.as_ref().unwrap().as_bytes(), want.as_bytes(), "{label} r{r}");
                        }
                        let steps = match algorithm {
                            AllReduceAlgorithm::Ring => Some(2 * (p - 1)),
                            AllReduceAlgorithm::RecursiveDoubling if p.is_power_of_two() => Some(ceil_log2(p)),
                            _ => None,
                        };
                        if let Some(steps) = steps {
                            assert!(out.sent.iter().all(|&s| s == steps), "{label}: pieces {:?}", out.sent);
                            assert!(out.steps.iter().all(|&s| s == steps), "{label}: steps {:?}", out.steps);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn recursive_doubling_folds_the_extra_ranks_in_two_more_steps() {
    for p in [3usize, 5, 6, 7, 9] {
        let p2 = if p.is_power_of_two() { p } else { p.next_power_of_two() / 2 };
        let extra = p - p2;
        let kind = CollectiveKind::AllReduce {
            op: ReduceOp::Sum,
            dtype: DType::F64,
            algorithm: AllReduceAlgorithm::RecursiveDoubling,
        };
        let vectors: Vec<Payload> = (0..p).map(|r| payload_of(&whole_numbers(r, 4), DType::F64)).collect();
        let out = run(p, reduction(1, &kind, &vectors), Order::Shuffled(5), &[], Segmenting::Whole);
        let rounds = p2.trailing_zeros() as usize;
        for r in 0..p {
            // The extra (even, below 2 extra) ranks send once; their partners also send the result back.
            let want = match r {
                r if r < 2 * extra && r % 2 == 0 => 1,
                r if r < 2 * extra => rounds + 1,
                _ => rounds,
            };
            assert_eq!(out.sent[r], want, "p={p} r{r}");
        }
        let critical = out.pieces.iter().map(|piece| piece.step).max().unwrap() as usize + 1;
        assert_eq!(critical, rounds + 2, "p={p}: fold in, log2 p2 doubling steps, fold out");
    }
}

#[test]
fn all_reduce_results_are_bit_identical_on_every_rank_for_any_floats() {
    for p in [2, 3, 4, 5, 7, 8, 9] {
        let mut rng = Rng::new(p as u64);
        let vectors: Vec<Payload> = (0..p)
            .map(|_| Payload::from_f64((0..29).map(|_| rng.below(1 << 30) as f64 / 7.3e5 - 700.0).collect()))
            .collect();
        for algorithm in ALL_REDUCE {
            let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm };
            for order in ORDERS {
                let out = run(p, reduction(1, &kind, &vectors), order, &[], Segmenting::Whole);
                let results = results(&out);
                let first = results[0].payload.as_ref().unwrap().as_bytes().to_vec();
                for m in &results {
                    assert_eq!(m.payload.as_ref().unwrap().as_bytes(), &first[..], "p={p} {algorithm:?} {order:?}");
                }
                // And close to the sum (different orders round differently across algorithms).
                for (i, x) in results[0].payload.as_ref().unwrap().as_f64().iter().enumerate() {
                    let exact: f64 = vectors.iter().map(|v| v.as_f64()[i]).sum();
                    assert!((x - exact).abs() <= 1e-9 * exact.abs().max(1.0), "{x} vs {exact}");
                }
            }
        }
    }
}

#[test]
fn a_ring_reduce_scatter_leaves_block_r_on_rank_r_and_an_all_gather_every_rank_s_list() {
    for p in 1..=9 {
        for n in [0, 2, 9, 23] {
            let exact: Vec<f64> = (0..n).map(|i| (0..p).map(|r| whole_numbers(r, n)[i]).sum()).collect();
            for dtype in [DType::F64, DType::F32] {
                let vectors: Vec<Payload> = (0..p).map(|r| payload_of(&whole_numbers(r, n), dtype)).collect();
                let kind = CollectiveKind::ReduceScatter { op: ReduceOp::Sum, dtype };
                for order in ORDERS {
                    let out = run(p, reduction(2, &kind, &vectors), order, &[], Segmenting::Whole);
                    for (r, m) in results(&out).into_iter().enumerate() {
                        let want = payload_of(&exact[block_range(n, p, r)], dtype);
                        assert_eq!(m.payload.unwrap().as_bytes(), want.as_bytes(), "p={p} n={n} {dtype:?} r{r}");
                    }
                    assert!(out.sent.iter().all(|&s| s == p - 1), "p={p}: {:?}", out.sent);
                }
            }
        }
        let joins: Vec<Vec<CollectiveJoin>> = (0..p)
            .map(|r| {
                let sends = vec![(Rank(r as u32), contribution(3, r, (r + 1) % p))];
                vec![CollectiveJoin { id: 3, kind: CollectiveKind::AllGather, sends }]
            })
            .collect();
        for order in ORDERS {
            let out = run(p, joins.clone(), order, &[], Segmenting::Whole);
            for r in 0..p {
                let got: Vec<(Rank, Vec<Message>)> =
                    out.done[r][0].1.iter().map(|c| (c.from, c.messages.clone())).collect();
                let want: Vec<(Rank, Vec<Message>)> =
                    (0..p).map(|s| (Rank(s as u32), contribution(3, s, (s + 1) % p))).collect();
                assert_eq!(got, want, "p={p} r{r}: one per rank, in rank order, this one included");
                assert_eq!(out.sent[r], p - 1);
            }
        }
    }
}

#[test]
fn phantom_vectors_flow_through_every_reduction_without_arithmetic() {
    for p in [1, 2, 3, 4, 6] {
        let n = 1000;
        let vectors: Vec<Payload> = (0..p).map(|_| Payload::phantom(n * 8)).collect();
        let mut kinds: Vec<CollectiveKind> = ALL_REDUCE
            .iter()
            .map(|&algorithm| CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm })
            .collect();
        kinds.push(CollectiveKind::ReduceScatter { op: ReduceOp::Sum, dtype: DType::F64 });
        for kind in kinds {
            let out = run(p, reduction(1, &kind, &vectors), Order::Shuffled(9), &[], Segmenting::Whole);
            for (r, m) in results(&out).into_iter().enumerate() {
                let payload = m.payload.unwrap();
                let len = match kind {
                    CollectiveKind::ReduceScatter { .. } => block_range(n, p, r).len() * 8,
                    _ => n * 8,
                };
                assert!(payload.is_phantom() || len == 0, "{kind:?} r{r}");
                assert_eq!(payload.len(), len, "{kind:?} r{r}");
            }
            // The pieces still weigh what the blocks would.
            let ring = matches!(kind, CollectiveKind::AllReduce { algorithm: AllReduceAlgorithm::Ring, .. });
            if ring && p > 1 {
                let charged: u64 = out.pieces.iter().map(|piece| piece.bytes).sum();
                assert_eq!(charged, (2 * (p - 1) * n * 8) as u64, "p={p}: every rank moves 2 (p-1)/p of the vector");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Early pieces, sequences, errors, encoding
// ---------------------------------------------------------------------------------

#[test]
fn ranks_that_join_late_or_run_ahead_by_collectives_still_complete_each_correctly() {
    for p in 2..=7 {
        for order in ORDERS {
            // Every rank joins five collectives in a row; ranks 0 and p-1 start only once
            // the others can move no further, so pieces of later collectives reach ranks
            // still in earlier ones.
            let kinds = [
                CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Bruck },
                CollectiveKind::Fence,
                CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise },
                CollectiveKind::AllReduce {
                    op: ReduceOp::Sum,
                    dtype: DType::F64,
                    algorithm: AllReduceAlgorithm::RecursiveDoubling,
                },
                CollectiveKind::Broadcast { members: (0..p as u32).rev().map(Rank).collect(), tree: Tree::Binomial },
            ];
            let joins: Vec<Vec<CollectiveJoin>> = (0..p)
                .map(|r| {
                    kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| {
                            let id = 10 * (i as u64 + 1);
                            let sends = match kind {
                                CollectiveKind::AllToAllV { .. } => (0..p)
                                    .filter(|&d| d != r)
                                    .map(|d| (Rank(d as u32), contribution(id, r, d)))
                                    .collect(),
                                CollectiveKind::AllReduce { .. } => {
                                    let v = Payload::from_f64(whole_numbers(r, 6));
                                    vec![(Rank(r as u32), vec![Message::data(9, ChunkId(0), v)])]
                                }
                                CollectiveKind::Broadcast { .. } if r == p - 1 => {
                                    vec![(Rank(r as u32), root_messages())]
                                }
                                _ => Vec::new(),
                            };
                            CollectiveJoin { id, kind: kind.clone(), sends }
                        })
                        .collect()
                })
                .collect();
            let out = run(p, joins, order, &[0, p - 1], Segmenting::Segments);
            assert!(out.early > 0, "p={p} {order:?}: some pieces came before their join");
            for r in 0..p {
                let ids: Vec<u64> = out.done[r].iter().map(|(id, _)| *id).collect();
                assert_eq!(ids, [10, 20, 30, 40, 50], "p={p} {order:?} r{r}");
                for (i, id) in [10, 30].into_iter().enumerate() {
                    let want: Vec<(Rank, Vec<Message>)> =
                        (0..p).filter(|&s| s != r).map(|s| (Rank(s as u32), contribution(id, s, r))).collect();
                    assert_eq!(by_sender(&out.done[r][2 * i].1), want, "p={p} {order:?} r{r} collective {id}");
                }
                let sum: Vec<f64> = (0..6).map(|i| (0..p).map(|s| whole_numbers(s, 6)[i]).sum()).collect();
                assert_eq!(out.done[r][3].1[0].messages[0].payload.as_ref().unwrap().as_f64(), &sum[..]);
            }
        }
    }
}

#[test]
fn a_piece_before_the_join_waits_and_shows_in_the_summary() {
    let kind = CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise };
    let mut r0 = Collectives::new(Rank(0), 2, Segmenting::Whole);
    let mut r1 = Collectives::new(Rank(1), 2, Segmenting::Whole);
    r1.join(5, CollectiveJoin { id: 8, kind: kind.clone(), sends: vec![(Rank(0), contribution(8, 1, 0))] });
    let early = r1.poll_send().unwrap();
    r0.handle_piece(6, early);
    assert!(r0.poll_done().is_none());
    assert!(!r0.is_idle());
    assert_eq!(r0.summary(), "collectives open: 8 not joined yet, 1 pieces in (from r1@0)");
    r0.join(7, CollectiveJoin { id: 8, kind, sends: vec![(Rank(1), contribution(8, 0, 1))] });
    let (id, received) = r0.poll_done().expect("the early piece completes it at the join");
    assert_eq!((id, received[0].from, received[0].recv_ns), (8, Rank(1), 6));
    assert_eq!(received[0].messages, contribution(8, 1, 0));
    r1.handle_piece(8, r0.poll_send().unwrap());
    assert!(r1.poll_done().is_some() && r0.is_idle() && r1.is_idle());
}

#[test]
fn malformed_joins_and_pieces_are_sticky_errors_that_say_what_is_wrong() {
    let f64_sum =
        CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm: AllReduceAlgorithm::Ring };
    // Vectors of different lengths.
    let mut r0 = Collectives::new(Rank(0), 2, Segmenting::Whole);
    let mut r1 = Collectives::new(Rank(1), 2, Segmenting::Whole);
    let join = |r: u32, n: usize| CollectiveJoin {
        id: 1,
        kind: f64_sum.clone(),
        sends: vec![(Rank(r), vec![Message::data(0, ChunkId(0), Payload::from_f64(vec![1.0; n]))])],
    };
    r0.join(0, join(0, 4));
    r1.join(0, join(1, 6));
    r0.handle_piece(1, r1.poll_send().unwrap());
    let e = r0.error().expect("a length mismatch").to_string();
    assert!(e.contains("rank r0, collective 1") && e.contains("did every rank join with a vector of 32 bytes"), "{e}");
    r0.join(2, join(0, 4));
    assert_eq!(r0.error().unwrap().id, 1, "the first error sticks");

    // A piece for a collective that completed here; one twice; one for another rank.
    let fence = |id| CollectiveJoin { id, kind: CollectiveKind::Fence, sends: vec![] };
    let mut r0 = Collectives::new(Rank(0), 1, Segmenting::Whole);
    r0.join(0, fence(3));
    assert!(r0.poll_done().is_some());
    let stale = Piece { id: 3, src: Rank(0), dst: Rank(0), sent_ns: 0, step: 0, bytes: 32, body: Body::Header };
    r0.handle_piece(1, stale.clone());
    assert!(r0.error().unwrap().reason.contains("arrived after the collective completed here"));
    let mut r0 = Collectives::new(Rank(0), 4, Segmenting::Whole);
    r0.handle_piece(1, Piece { id: 9, ..stale.clone() });
    r0.join(2, fence(9));
    r0.handle_piece(3, Piece { id: 9, ..stale.clone() });
    assert!(r0.error().unwrap().reason.contains("arrived twice"), "{:?}", r0.error());
    let mut r0 = Collectives::new(Rank(0), 4, Segmenting::Whole);
    r0.handle_piece(1, Piece { dst: Rank(2), ..stale.clone() });
    assert!(r0.error().unwrap().reason.contains("a piece for r2"));
    // A reduction without its vector; ids that do not increase.
    let mut r0 = Collectives::new(Rank(0), 2, Segmenting::Whole);
    r0.join(0, CollectiveJoin { id: 4, kind: f64_sum.clone(), sends: vec![] });
    assert!(r0.error().unwrap().reason.contains("without exactly one data message"));
    let mut r0 = Collectives::new(Rank(0), 2, Segmenting::Whole);
    r0.join(0, fence(4));
    r0.join(0, fence(4));
    assert!(r0.error().unwrap().reason.contains("ids must increase"));
}

#[test]
fn a_piece_round_trips_through_its_encoding_with_every_body() {
    let messages = root_messages();
    let bodies = [
        Body::Header,
        Body::Messages(Vec::new()),
        Body::Messages(messages.clone()),
        Body::Segment { of: 3, messages: None },
        Body::Segment { of: 3, messages: Some(messages.clone()) },
        Body::Blocks(vec![
            Block { origin: Rank(2), sent_ns: 17, messages: messages.clone() },
            Block { origin: Rank(5), sent_ns: 0, messages: Vec::new() },
        ]),
        Body::Values(Payload::from_f64(vec![1.5, -2.0, 3.25])),
        Body::Values(Payload::phantom(1 << 20)),
        Body::Messages(vec![Message::data(1, ChunkId(1), Payload::phantom(64))]),
        Body::Values(Payload::default()),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let piece =
            Piece { id: u64::MAX - i as u64, src: Rank(3), dst: Rank(7), sent_ns: 123_456, step: 9, bytes: 77, body };
        let mut buf = vec![0xAA]; // the encoding appends
        piece.encode(&mut buf);
        assert_eq!(Piece::decode(&buf[1..]).as_ref(), Ok(&piece), "body {i}");
        for cut in [1, buf.len() / 2, buf.len() - 2] {
            let err = Piece::decode(&buf[1..cut.max(1)]).unwrap_err();
            assert!(err.contains("truncated piece"), "body {i} cut at {cut}: {err}");
        }
        buf.push(0);
        assert!(Piece::decode(&buf[1..]).unwrap_err().contains("left over"), "body {i}");
    }
}

/// Bruck forwards blocks through other ranks; what arrives still names its origin.
#[test]
fn contributions_name_their_origin_even_when_forwarded() {
    let p = 6;
    let out = run(p, all_to_all(1, p, AllToAllAlgorithm::Bruck), Order::Fifo, &[], Segmenting::Whole);
    for r in 0..p {
        let froms: BTreeMap<Rank, usize> = out.done[r][0].1.iter().map(|c| (c.from, 1)).collect();
        assert_eq!(froms.len(), p - 1, "r{r}: one per other rank, named by its origin, not by the forwarder");
        assert!(!froms.contains_key(&Rank(r as u32)));
    }
}
