//! A sweep checks every point with a workload's `check`, which must refuse exactly what
//! building the workload (`prepare`) refuses, naming the same parameter, without
//! building a DAG.

use dagwire_runtime::{ParamValue, Params};
use dagwire_workloads::REGISTRY;
use proptest::prelude::*;

/// Each registered workload with parameter values around its limits.
fn cases() -> impl Strategy<Value = (&'static str, Vec<(&'static str, ParamValue)>, usize)> {
    let int = |lo: i64, hi: i64| (lo..=hi).prop_map(ParamValue::Int);
    let text = |xs: &'static [&'static str]| proptest::sample::select(xs).prop_map(|s| ParamValue::Str(s.into()));
    prop_oneof![
        (int(1, 300), int(1, 320), text(&["1d-cyclic", "2d-block-cyclic"]), text(&["auto", "1x3", "2x2", "4x1"]))
            .prop_map(|(n, t, l, g)| ("cholesky", vec![("n", n), ("tile", t), ("layout", l), ("grid", g)])),
        (int(1, 200), int(0, 100), int(1, 220), text(&["1d-cyclic", "2d-block-cyclic", "3d"]), int(1, 3)).prop_map(
            |(n, m, t, l, c)| ("gemm", vec![("n", n), ("m", m), ("tile", t), ("layout", l), ("replicas", c)])
        ),
        (text(&["mlp-small", "8,4", "8", "0,3", "70000,2", "4,,2"]), int(1, 3), int(1, 4))
            .prop_map(|(m, s, b)| ("dp-train", vec![("model", m), ("steps", s), ("batch", b)])),
        (text(&["pingpong", "bandwidth", "alltoall", "broadcast"]), int(1, 1 << 20), int(1, 3), int(1, 64))
            .prop_map(|(p, s, i, w)| ("micro", vec![("pattern", p), ("size", s), ("iterations", i), ("window", w)])),
        moe_case(),
    ]
    .prop_flat_map(|(w, params)| (Just(w), Just(params), 0usize..6))
}

/// moe with sizes from tiny to each parameter's largest (refused or cheap to build).
fn moe_case() -> impl Strategy<Value = (&'static str, Vec<(&'static str, ParamValue)>)> {
    let ints = |xs: &'static [i64]| proptest::sample::select(xs).prop_map(ParamValue::Int);
    let floats = |xs: &'static [f64]| proptest::sample::select(xs).prop_map(ParamValue::Float);
    let policy = proptest::sample::select(&["static", "dropless", "replicate-hot", "dynamic"][..])
        .prop_map(|s| ParamValue::Str(s.into()));
    (
        (ints(&[1, 7, 64, 1 << 20]), ints(&[1, 5, 1 << 14]), ints(&[1, 9, 1 << 15]), ints(&[1, 3, 8, 4096])),
        (ints(&[1, 2, 3, 64]), policy, ints(&[1, 2, 5, 1 << 16]), ints(&[0, 1, 3, 4096])),
        (floats(&[0.01, 1.25, 1e6]), floats(&[0.0, 1.2, 8.0])),
    )
        .prop_map(|((t, d, h, e), (k, p, r, hot), (c, z))| {
            let names = ["tokens", "d", "hidden", "experts", "top_k", "policy", "replicas", "hot"];
            let mut v: Vec<(&'static str, ParamValue)> = names.into_iter().zip([t, d, h, e, k, p, r, hot]).collect();
            v.extend([("capacity_factor", c), ("zipf", z)]);
            ("moe", v)
        })
}

#[test]
fn absurd_moe_sizes_are_refused_naming_the_key() {
    let info = REGISTRY.iter().find(|i| i.name == "moe").unwrap();
    let refused = |given: &[(&str, ParamValue)], ranks| {
        (info.check)(&Params::from_pairs(&(info.params)(), given).unwrap(), ranks).unwrap_err().key
    };
    assert_eq!(refused(&[("experts", ParamValue::Int(4096))], 8192), "experts");
    assert_eq!(refused(&[("tokens", ParamValue::Int(1 << 20))], 64), "tokens");
    assert_eq!(refused(&[("tokens", ParamValue::Int(1 << 16)), ("d", ParamValue::Int(1 << 14))], 2), "tokens");
    assert_eq!(refused(&[("d", ParamValue::Int(1 << 14)), ("hidden", ParamValue::Int(1 << 15))], 2), "hidden");
    assert_eq!(refused(&[], 0), "ranks");
    // sweeps/moe.toml's layer passes.
    let moe_toml = [512, 512, 2048, 64].map(ParamValue::Int);
    let names = ["tokens", "d", "hidden", "experts"];
    let given: Vec<(&str, ParamValue)> = names.into_iter().zip(moe_toml).collect();
    (info.check)(&Params::from_pairs(&(info.params)(), &given).unwrap(), 64).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn check_refuses_exactly_what_building_refuses((w, given, ranks) in cases()) {
        let info = REGISTRY.iter().find(|i| i.name == w).unwrap();
        let params = Params::from_pairs(&(info.params)(), &given).unwrap();
        let checked = (info.check)(&params, ranks);
        let built = (info.prepare)(&params, ranks, 1);
        match (&checked, &built) {
            (Ok(()), Ok(_)) => {}
            (Err(a), Err(b)) => prop_assert_eq!((&a.key, &a.reason), (&b.key, &b.reason)),
            _ => prop_assert!(false, "{} {given:?} on {ranks} ranks: check {checked:?}, build {:?}",
                info.name, built.as_ref().err()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    /// Whatever a routing trace file holds, reading it refuses or accepts without a
    /// panic; a refusal names the file, and an accepted routing has valid expert ids.
    #[test]
    fn any_routing_file_text_is_read_or_refused_naming_the_file(
        lines in proptest::collection::vec("[-0-9 .#eEinfaNx]{0,24}", 0..6),
        k in 1usize..3,
    ) {
        let text = lines.join("\n");
        match dagwire_workloads::moe::Routing::parse(&text, "r.txt", 1, 2, 3, k) {
            Ok(r) => prop_assert!(r.expert.iter().all(|&e| e < 3) && r.weight.iter().all(|w| w.is_finite())),
            Err(e) => prop_assert!(e.starts_with("r.txt"), "{e}"),
        }
    }
}
