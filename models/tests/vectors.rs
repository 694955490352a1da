//! The weight-vector definitions of docs/method.md (strategy 1), pinned.
use std::collections::HashMap;
use std::f64::consts::FRAC_PI_2;

use pwsnas_models::vector::{angle_from_sums, materialize, vector_len};
use pwsnas_models::{AngleMeter, Arch, Composition, Nb201Params, Op, Segment, Space, SpaceKind, Supernet};

mod common;
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
        for comp in Composition::ALL {
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

/// Perturbs every variable, as training would (BN affine parameters included).
fn perturb(net: &Supernet, seed: i64) {
    tch::manual_seed(seed);
    tch::no_grad(|| {
        for (_, t) in net.named_tensors() {
            let _ = t.shallow_clone().g_add_(&(Tensor::randn_like(&t) * 0.05));
        }
    });
}

fn is_bn_affine(seg: &Segment) -> bool {
    matches!(seg, Segment::Tensor { current, .. } if current.ends_with("bn.weight") || current.ends_with("bn.bias"))
}

#[test]
fn pwsnas_adds_an_identity_kernel_per_skip_and_the_ops_bn_affine_parameters() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    // Path 0→1→2: skip (1<-0) then conv 1x1 (2<-1); path 0→2: conv 3x3 (2<-0).
    let arch = kind.parse_arch("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|").unwrap();
    let channels = [4usize, 4, 8, 8, 16, 16];
    let ops = net.segments(&arch, Composition::Ops);
    let pw = net.segments(&arch, Composition::Pwsnas);
    // Per cell: C ones for the one skip on one path, γ and β (2C) of each of the two convs' BNs.
    let extra: usize = channels.iter().map(|c| c + 2 * 2 * c).sum();
    assert_eq!(vector_len(&pw), vector_len(&ops) + extra);
    let identities: Vec<&Segment> = pw.iter().filter(|s| matches!(s, Segment::Constant { .. })).collect();
    let expected: Vec<Segment> = channels.iter().map(|&c| Segment::identity(c)).collect();
    assert_eq!(identities, expected.iter().collect::<Vec<_>>());
    assert_eq!(pw.iter().filter(|s| is_bn_affine(s)).count(), 2 * 2 * channels.len());
    assert!(!ops.iter().any(is_bn_affine));
    // The BN parameters follow their conv's weight: conv, γ, β.
    let first_conv = pw.iter().position(|s| matches!(s, Segment::Tensor { .. })).unwrap();
    let name = |i: usize| match &pw[i] {
        Segment::Tensor { current, .. } => current.clone(),
        other => panic!("{other:?}"),
    };
    assert!(name(first_conv).ends_with("conv.weight"), "{}", name(first_conv));
    assert!(name(first_conv + 1).ends_with("bn.weight") && name(first_conv + 2).ends_with("bn.bias"));
    // Each skip on each path: two skips on the 0→1→2 path add 2C per cell.
    let two = kind.parse_arch("|skip_connect~0|+|none~0|skip_connect~1|").unwrap();
    assert!(net.segments(&two, Composition::Ops).is_empty());
    assert_eq!(
        vector_len(&net.segments(&two, Composition::Pwsnas)),
        channels.iter().map(|c| 2 * c).sum::<usize>()
    );
}

#[test]
fn the_identity_kernel_gives_the_angle_of_the_identity_matrix() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let mut initial = vars(&net);
    perturb(&net, 9);
    let mut current = vars(&net);
    let arch = kind.parse_arch("|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|").unwrap();
    let segs = net.segments(&arch, Composition::Pwsnas);
    // The same vector with every identity kernel written as the C×C identity matrix.
    let mut as_matrix = Vec::new();
    for s in &segs {
        match s {
            Segment::Constant { len, value } if *value == 1.0 => {
                let name = format!("eye{len}");
                let eye = Tensor::eye(*len as i64, (Kind::Double, Device::Cpu));
                initial.insert(name.clone(), eye.copy());
                current.insert(name.clone(), eye);
                as_matrix.push(Segment::Tensor { current: name.clone(), initial: name, numel: len * len });
            }
            other => as_matrix.push(other.clone()),
        }
    }
    assert!(vector_len(&as_matrix) > vector_len(&segs));
    let meter = AngleMeter::new(&initial, &current);
    let (a, b) = (meter.angle(&segs), meter.angle(&as_matrix));
    assert!(a > 0.0 && (a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn the_pwsnas_angle_differs_from_the_ops_angle_on_a_trained_net() {
    let kind = nb201_3();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let initial = vars(&net);
    perturb(&net, 3);
    let current = vars(&net);
    let meter = AngleMeter::new(&initial, &current);
    for s in [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|",
        "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
    ] {
        let arch = kind.parse_arch(s).unwrap();
        let ops = meter.angle(&net.segments(&arch, Composition::Ops));
        let pw = meter.angle(&net.segments(&arch, Composition::Pwsnas));
        assert!(ops > 0.0 && pw > 0.0 && (ops - pw).abs() > 1e-6, "{s}: ops {ops}, pwsnas {pw}");
    }
}

#[test]
fn mobile_pwsnas_vectors_add_the_identity_of_the_layer_and_the_blocks_bns() {
    let kind = common::tiny_mobile();
    let space = Space::full(kind.clone());
    let net = Supernet::new(&space, Device::Cpu);
    // Layers 8→8, 8→8, 8→16 (stride 2), 16→16: identity wherever a layer allows it.
    let shapes = [(8usize, 8usize), (8, 8), (8, 16), (16, 16)];
    let ops: Vec<Op> = space
        .choices
        .iter()
        .map(|c| if c.ops.contains(&Op::Identity) { Op::Identity } else { c.ops[0] })
        .collect();
    assert!(ops.contains(&Op::Identity));
    let mut expected_extra = 0;
    for (op, &(c_in, c_out)) in ops.iter().zip(&shapes) {
        expected_extra += match *op {
            Op::Identity => c_in,
            Op::MbConv { expand: 1, .. } => 2 * (c_in + c_out),
            Op::MbConv { expand, .. } => 2 * (2 * c_in * expand as usize + c_out),
            other => panic!("{other}"),
        };
    }
    let arch = Arch { ops };
    let len = |c| vector_len(&net.segments(&arch, c));
    assert_eq!(len(Composition::Pwsnas), len(Composition::Ops) + expected_extra);
    let initial = vars(&net);
    perturb(&net, 4);
    let current = vars(&net);
    let segs = net.segments(&arch, Composition::Pwsnas);
    let (a, b) = (materialize(&segs, &initial, true), materialize(&segs, &current, false));
    let cos = (&a * &b).sum(Kind::Double).double_value(&[])
        / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
    let got = AngleMeter::new(&initial, &current).angle(&segs);
    assert!((got - cos.clamp(-1.0, 1.0).acos()).abs() < 1e-9);
}
