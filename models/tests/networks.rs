//! Networks built on libtorch agree with the analytic counts, and a child copied out of the supernet
//! computes exactly what the supernet restricted to it computes.
use std::collections::HashMap;

mod common;

use common::tiny_mobile;
use pwsnas_models::{Arch, Mode, Nb201Params, Op, Route, Space, SpaceKind, Supernet};
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

fn nb201(channels: usize, cells: usize) -> SpaceKind {
    SpaceKind::new(Nb201Params { channels, cells_per_stage: cells, ..Nb201Params::default() })
}

#[test]
fn nb201_parameter_counts_match_nas_bench_201() {
    let kind = nb201(16, 5);
    // NAS-Bench-201 (CIFAR-10, C=16, N=5) parameter counts, computed the way NB201 counts them
    // (all parameters incl. BatchNorm affine and biases).
    let cases = [
        (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            1_531_546,
        ),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 73_306),
        ("|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|", 73_306),
        ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|", 559_386),
        // node 2 receives only `none`; 1x1 convs on three edges
        ("|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_3x3~2|", 0),
    ];
    for (s, expected) in cases {
        let arch = kind.parse_arch(s).unwrap();
        let analytic = kind.cost(&arch).params() as i64;
        if expected > 0 {
            assert_eq!(analytic, expected, "{s}");
        }
        let built = Supernet::standalone(&kind, &arch, Device::Cpu).param_count();
        assert_eq!(built, analytic, "built network and analytic count disagree for {s}");
    }
    let largest = kind.parse_arch(cases[0].0).unwrap();
    let biggest = kind.cost(&largest).params();
    let space = Space::full(kind.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for _ in 0..50 {
        assert!(kind.cost(&space.sample(&mut rng)).params() <= biggest);
    }
}

#[test]
fn nb201_flops_by_hand() {
    let kind = nb201(16, 5);
    let arch = kind
        .parse_arch(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        )
        .unwrap();
    // 90 cell convs of 2,359,296 MACs each + stem + two reductions + classifier.
    let cells = 90 * 2_359_296u64;
    let stem = 9 * 3 * 16 * 32 * 32;
    let red1 = 9 * 16 * 32 * 256 + 9 * 32 * 32 * 256 + 16 * 32 * 256;
    let red2 = 9 * 32 * 64 * 64 + 9 * 64 * 64 * 64 + 32 * 64 * 64;
    assert_eq!(kind.cost(&arch).flops(), cells + stem + red1 + red2 + 650);
}

#[test]
fn mobile_parameter_counts_match_the_built_network() {
    let kind = tiny_mobile();
    let space = Space::full(kind.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..5 {
        let arch = space.sample(&mut rng);
        let built = Supernet::standalone(&kind, &arch, Device::Cpu).param_count();
        assert_eq!(built, kind.cost(&arch).params() as i64, "{}", kind.format_arch(&arch));
    }
}

/// Perturbs every variable so BN statistics and affine parameters are not at their defaults.
fn randomize(net: &Supernet, seed: i64) {
    tch::manual_seed(seed);
    tch::no_grad(|| {
        for (name, t) in net.named_tensors() {
            let noise = Tensor::rand_like(&t) * 0.5 + 0.75;
            let mut t = t.shallow_clone();
            if name.ends_with("running_var") || name.ends_with("bn.weight") {
                t.copy_(&noise);
            } else {
                let _ = t.g_add_(&((noise - 1.0) * 0.2));
            }
        }
    });
}

fn check_child_matches_supernet(kind: SpaceKind, copies: usize) {
    let space = Space::full(kind.clone());
    let mut supernet = Supernet::new(&space, Device::Cpu);
    for cp in 0..space.choices.len() {
        if let Some(&by) = kind.previous_choices(cp).first() {
            supernet.grow_copies(cp, copies, Some(Route { by, ops: space.choices[by].ops.clone() }));
        }
    }
    randomize(&supernet, 7);
    let [c, h, w] = kind.input_shape();
    let x = Tensor::randn([4, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for _ in 0..6 {
        let arch = space.sample(&mut rng);
        let child = supernet.extract_child(&arch).unwrap();
        for mode in [Mode::EVAL, Mode { bn_momentum: 0.0, ..Mode::TRAIN }] {
            let a = tch::no_grad(|| supernet.forward(&x, &arch, mode));
            let b = tch::no_grad(|| child.forward(&x, &arch, mode));
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{}: max diff {diff}", kind.format_arch(&arch));
        }
    }
}

#[test]
fn child_copied_out_of_the_supernet_computes_the_same_outputs() {
    check_child_matches_supernet(nb201(4, 1), 1);
    check_child_matches_supernet(tiny_mobile(), 1);
}

#[test]
fn child_with_weight_copies_uses_the_routed_copy() {
    check_child_matches_supernet(nb201(4, 1), 3);
    let kind = nb201(4, 1);
    let space = Space::full(kind.clone());
    let mut supernet = Supernet::new(&space, Device::Cpu);
    // Edge 2<-1, routed by 1<-0 whose surviving ops are these three (none and conv 3x3 dropped).
    let survivors = vec![Op::SkipConnect, Op::NorConv1x1, Op::AvgPool3x3];
    supernet.grow_copies(2, 2, Some(Route { by: 0, ops: survivors }));
    let base: Vec<Op> =
        kind.parse_arch("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|").unwrap().ops;
    let route = |first: Op| {
        let mut ops = base.clone();
        ops[0] = first;
        supernet.route(&Arch { ops })[2]
    };
    // Copy = rank among the surviving ops mod 2; an op outside them (a child outside the space) uses copy 0.
    assert_eq!(route(Op::SkipConnect), 0);
    assert_eq!(route(Op::NorConv1x1), 1);
    assert_eq!(route(Op::AvgPool3x3), 0);
    assert_eq!(route(Op::NorConv3x3), 0);
    // A fresh copy starts equal to copy 0; after perturbing one, outputs differ.
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let a1 = Arch { ops: [vec![Op::NorConv1x1], base[1..].to_vec()].concat() };
    let a0 = Arch { ops: [vec![Op::SkipConnect], base[1..].to_vec()].concat() };
    let segs = supernet.segments(&a1, pwsnas_models::Composition::Ops);
    let copy1 = segs
        .iter()
        .find_map(|s| match s {
            pwsnas_models::Segment::Tensor { current, initial, .. } if current != initial => {
                Some(current.clone())
            }
            _ => None,
        })
        .expect("copy 1 appears in the vector with copy 0 as its W0");
    let vars: HashMap<String, Tensor> = supernet.named_tensors().into_iter().collect();
    tch::no_grad(|| {
        let _ = vars[&copy1].shallow_clone().g_add_(&Tensor::ones_like(&vars[&copy1]));
    });
    assert!(supernet.extract_child(&a1).is_ok());
    let y_a1 = tch::no_grad(|| supernet.forward(&x, &a1, Mode::EVAL));
    let y_a0 = tch::no_grad(|| supernet.forward(&x, &a0, Mode::EVAL));
    assert!((y_a1 - y_a0).abs().max().double_value(&[]) > 1e-4);
}

/// PDARTS's dropout on `skip_connect` acts in a weighted mix's training forward only: not in
/// evaluation, and not on the SPOS single path (which never asks for it).
#[test]
fn skip_dropout_acts_on_skip_connect_in_a_weighted_training_forward_only() {
    let kind = nb201(4, 1);
    let space = Space::full(kind.clone());
    tch::manual_seed(0);
    let net = Supernet::new(&space, Device::Cpu);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    // Every edge: skip_connect weighted 1, nor_conv_1x1 weighted 0.5.
    let weights: Vec<Tensor> =
        space.choices.iter().map(|_| Tensor::from_slice(&[0.0f32, 1.0, 0.5, 0.0, 0.0])).collect();
    // No assertion here depends on the dropout mask: torch's generator is global, and tests run in
    // parallel threads.
    let run = |mode: Mode| net.forward_mix(&x, &pwsnas_models::Mix::weighted(&space, &weights), mode);
    let plain = run(Mode::TRAIN);
    assert!(
        plain.allclose(&run(Mode::TRAIN), 0.0, 0.0, false),
        "a training forward without dropout is deterministic"
    );
    let dropped = run(Mode::TRAIN.with_skip_dropout(0.5));
    assert!((&plain - &dropped).abs().max().double_value(&[]) > 1e-3, "dropout changed nothing");
    let eval = run(Mode::EVAL);
    assert!(eval.allclose(&run(Mode::EVAL.with_skip_dropout(0.5)), 0.0, 0.0, false));
    let skip = kind
        .parse_arch(
            "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
        )
        .unwrap();
    let single = |mode: Mode| net.forward_mix(&x, &pwsnas_models::Mix::single(&skip), mode);
    assert!(single(Mode::TRAIN).allclose(&single(Mode::TRAIN.with_skip_dropout(0.5)), 0.0, 0.0, false));
}

/// PDARTS drops only identities: a darts `skip_connect` at stride 2 (a FactorizedReduce, in the
/// reduction cells) passes through a training mix with skip dropout untouched, one at stride 1 does not.
#[test]
fn skip_dropout_spares_the_factorized_reduce_of_a_stride_2_skip() {
    use pwsnas_models::darts::ops::DartsOp;
    use pwsnas_models::net::{Module, OpSite};
    struct One(DartsOp);
    impl OpSite for One {
        fn cp(&self) -> usize {
            0
        }
        fn module(&self, _op: Op, _copy: usize) -> &dyn Module {
            &self.0
        }
        fn magnitude(&self, _op: Op, _copy: usize) -> f64 {
            0.0
        }
    }
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let weight = Some(Tensor::from(1.0f32));
    let picks = [pwsnas_models::Weighted { op: Op::SkipConnect, weight }];
    let x = Tensor::randn([2, 4, 8, 8], (Kind::Float, Device::Cpu)).abs() + 0.1;
    let (train, dropping) = (Mode::TRAIN, Mode::TRAIN.with_skip_dropout(0.5));
    for (stride, dropped) in [(1, true), (2, false)] {
        let site = One(DartsOp::new(&vs.root(), Op::SkipConnect, 4, stride, true));
        assert_eq!(site.0.is_identity(), stride == 1);
        let plain = site.forward(&x, &picks, 0, train).unwrap();
        let y = site.forward(&x, &picks, 0, dropping).unwrap();
        // Dropout at 0.5 zeroes about half of 512 positive elements; a FactorizedReduce is left as is.
        let zeros = |t: &Tensor| t.eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(zeros(&y) > zeros(&plain) + 100, dropped, "stride {stride}");
        if !dropped {
            assert!(y.allclose(&plain, 0.0, 0.0, false), "stride {stride}");
        }
    }
}
