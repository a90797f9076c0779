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
    ]
    .prop_flat_map(|(w, params)| (Just(w), Just(params), 0usize..6))
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
