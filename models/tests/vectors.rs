//! The weight-vector definitions of docs/method.md (strategy 1), pinned.
use std::collections::HashMap;
use std::f64::consts::FRAC_PI_2;

use pwsnas_models::vector::{angle_from_sums, materialize, vector_len};
use pwsnas_models::{AngleMeter, Composition, Nb201Params, Segment, Space, SpaceKind, Supernet};
use tch::{Device, Kind, Tensor};

fn nb201_3() -> SpaceKind {
    SpaceKind::new(Nb201Params { nodes: 3, channels: 4, cells_per_stage: 2, ..Nb201Params::default() })
}

fn vars(net: &Supernet) -> HashMap<String, Tensor> {
    net.named_tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

#[test]
fn angle_of_identical_is_zero_and_of_orthogonal_is_right() {
    assert_eq!(angle_from_sums(4.0, 4.0, 4.0), 0.0);
    assert!((angle_from_sums(0.0, 2.0, 3.0) - FRAC_PI_2).abs() < 1e-12);
    assert!((angle_from_sums(-2.0, 2.0, 2.0) - std::f64::consts::PI).abs() < 1e-12);
    // Rounding can push the cosine past 1: clamped, never NaN.
    assert_eq!(angle_from_sums(1.0 + 1e-15, 1.0, 1.0), 0.0);
    assert_eq!(angle_from_sums(0.0, 0.0, 0.0), 0.0);
}

#[test]
fn pooling_on_a_path_adds_a_constant_ninth_kernel() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    // Paths of a 3-node cell: 0→1→2 (edges 1<-0, 2<-1) and 0→2 (edge 2<-0, here none: cut).
    let arch = kind.parse_arch("|avg_pool_3x3~0|+|none~0|skip_connect~1|").unwrap();
    let segs = net.segments(&arch, Composition::Ops);
    let stage_channels = [4usize, 4, 8, 8, 16, 16];
    assert_eq!(segs.len(), 6);
    for (seg, c) in segs.iter().zip(stage_channels) {
        assert_eq!(*seg, Segment::Constant { len: c * 9, value: 1.0 / 9.0 });
    }
    let v = materialize(&segs, &vars(&net), false);
    assert_eq!(v.size(), [9 * (4 + 4 + 8 + 8 + 16 + 16)]);
    assert!((v - 1.0 / 9.0).abs().max().double_value(&[]) < 1e-15);
}

#[test]
fn none_cuts_paths_and_a_fully_cut_cell_contributes_nothing() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let cut = kind.parse_arch("|nor_conv_3x3~0|+|none~0|none~1|").unwrap();
    assert!(net.segments(&cut, Composition::Ops).is_empty());
    let initial = vars(&net);
    assert_eq!(AngleMeter::new(&initial, &initial).angle(&net.segments(&cut, Composition::Ops)), 0.0);
    // Only the direct path survives: one 1x1 conv per cell.
    let direct = kind.parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|").unwrap();
    let segs = net.segments(&direct, Composition::Ops);
    assert_eq!(vector_len(&segs), [4usize, 4, 8, 8, 16, 16].iter().map(|c| c * c).sum::<usize>());
}

#[test]
fn vector_length_follows_the_definition() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let arch = kind.parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|").unwrap();
    // Path 0→1→2: conv3x3 (9C²) + pool (9C); path 0→2: conv1x1 (C²).
    let per_cell = |c: usize| 9 * c * c + 9 * c + c * c;
    let ops_len: usize = [4usize, 4, 8, 8, 16, 16].iter().map(|&c| per_cell(c)).sum();
    assert_eq!(vector_len(&net.segments(&arch, Composition::Ops)), ops_len);
    // Full adds the stem (3→4, 3×3), both reductions (conv_a, conv_b, 1×1 shortcut) and the classifier.
    let stem = 9 * 3 * 4;
    let red = |ci: usize, co: usize| 9 * ci * co + 9 * co * co + ci * co;
    let fixed = stem + red(4, 8) + red(8, 16) + 16 * 10;
    assert_eq!(vector_len(&net.segments(&arch, Composition::Full)), ops_len + fixed);
}

#[test]
fn fast_angle_equals_the_angle_of_the_materialized_vectors() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let initial = vars(&net);
    tch::manual_seed(5);
    tch::no_grad(|| {
        for (_, t) in net.named_tensors() {
            let _ = t.shallow_clone().g_add_(&(Tensor::randn_like(&t) * 0.05));
        }
    });
    let current = vars(&net);
    let meter = AngleMeter::new(&initial, &current);
    for s in [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|",
        "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
    ] {
        let arch = kind.parse_arch(s).unwrap();
        for comp in [Composition::Ops, Composition::Full] {
            let segs = net.segments(&arch, comp);
            let a = materialize(&segs, &initial, true);
            let b = materialize(&segs, &current, false);
            let cos = (&a * &b).sum(Kind::Double).double_value(&[])
                / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
            let expected = cos.clamp(-1.0, 1.0).acos();
            let got = meter.angle(&segs);
            assert!(got > 0.0 && (got - expected).abs() < 1e-9, "{s} {comp:?}: {got} vs {expected}");
        }
    }
}
