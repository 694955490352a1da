//! The weighted forward (`Mix`): with a one-hot weight it computes what the single path computes
//! (weight copies routed alike), and gradients reach both the α the weights come from and the
//! weights of every op with a non-zero weight, while `trainable_for_mix` lists exactly the tensors
//! a mix uses; in `nb201`, `mobile` and the DARTS cell space.
mod common;

use common::tiny_mobile;
use pwsnas_models::{Arch, DartsParams, Mix, Mode, Nb201Params, Route, Space, SpaceKind, Supernet, Weighted};
use rand::SeedableRng;
use tch::{Device, Kind, Reduction, Tensor};

fn nb201() -> SpaceKind {
    SpaceKind::new(Nb201Params { channels: 4, cells_per_stage: 1, input_size: 8, ..Nb201Params::default() })
}

/// The DARTS cell space at a tiny size (3 cells: both reduction cells adjacent).
fn tiny_darts() -> SpaceKind {
    SpaceKind::new(DartsParams {
        channels: 2,
        layers: 3,
        classes: 4,
        input_size: 8,
        ..DartsParams::default()
    })
}

fn scalar(v: f64) -> Tensor {
    Tensor::from(v as f32)
}

/// Every op of `space` at every choice point, `arch`'s op first with weight 1, the others 0.
fn one_hot(space: &Space, arch: &Arch) -> Mix {
    let choices = space
        .choices
        .iter()
        .zip(&arch.ops)
        .map(|(cp, &chosen)| {
            let others = cp.ops.iter().filter(|&&op| op != chosen);
            std::iter::once(Weighted { op: chosen, weight: Some(scalar(1.0)) })
                .chain(others.map(|&op| Weighted { op, weight: Some(scalar(0.0)) }))
                .collect()
        })
        .collect();
    Mix::new(choices)
}

fn input(kind: &SpaceKind, n: i64) -> Tensor {
    let [c, h, w] = kind.input_shape();
    Tensor::randn([n, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn check_one_hot_equals_single_path(kind: SpaceKind, copies: usize) {
    tch::manual_seed(3);
    let space = Space::full(kind.clone());
    let mut net = Supernet::new(&space, Device::Cpu);
    for cp in 0..space.choices.len() {
        // Routed by the first previous choice point, so that children use different copies.
        let route =
            kind.previous_choices(cp).first().map(|&by| Route { by, ops: space.choices[by].ops.clone() });
        net.grow_copies(cp, copies, route);
    }
    // Copies that differ from copy 0, so that a wrong route shows.
    tch::no_grad(|| {
        for (name, t) in net.named_tensors() {
            if (name.contains(".c1.") || name.contains(".c2.")) && name.ends_with("conv.weight") {
                let _ = t.shallow_clone().g_add_(&(Tensor::randn_like(&t) * 0.3));
            }
        }
    });
    let x = input(&kind, 3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..6 {
        let arch = space.sample(&mut rng);
        let single = tch::no_grad(|| net.forward(&x, &arch, Mode::EVAL));
        let mixed = tch::no_grad(|| net.forward_mix(&x, &one_hot(&space, &arch), Mode::EVAL));
        let d = max_diff(&single, &mixed);
        assert!(d < 1e-6, "{}: one-hot mix differs from the single path by {d}", kind.format_arch(&arch));
        // The single-path mix is the single path, bit for bit.
        let plain = tch::no_grad(|| net.forward_mix(&x, &Mix::single(&arch), Mode::EVAL));
        assert_eq!(max_diff(&single, &plain), 0.0);
    }
}

#[test]
fn one_hot_mix_equals_the_single_path() {
    check_one_hot_equals_single_path(nb201(), 1);
    check_one_hot_equals_single_path(tiny_mobile(), 1);
    check_one_hot_equals_single_path(tiny_darts(), 1);
}

#[test]
fn one_hot_mix_routes_weight_copies_like_the_single_path() {
    check_one_hot_equals_single_path(nb201(), 3);
    check_one_hot_equals_single_path(tiny_mobile(), 2);
}

#[test]
fn one_hot_softmax_weights_equal_the_single_path() {
    let kind = nb201();
    let space = Space::full(kind.clone());
    let net = Supernet::new(&space, Device::Cpu);
    let x = input(&kind, 2);
    let arch = space
        .parse_arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|")
        .unwrap();
    let weights: Vec<Tensor> = space
        .choices
        .iter()
        .zip(&arch.ops)
        .map(|(cp, op)| {
            let hot: Vec<f32> = cp.ops.iter().map(|o| if o == op { 1.0 } else { 0.0 }).collect();
            Tensor::from_slice(&hot)
        })
        .collect();
    let single = tch::no_grad(|| net.forward(&x, &arch, Mode::EVAL));
    let mixed = tch::no_grad(|| net.forward_mix(&x, &Mix::weighted(&space, &weights), Mode::EVAL));
    assert!(max_diff(&single, &mixed) < 1e-6);
}

/// DARTS's relaxation: every op weighted by softmax(α). One backward reaches every α and the
/// weights of every op.
fn check_gradients_reach_alpha_and_every_op(kind: SpaceKind) {
    tch::manual_seed(1);
    let space = Space::full(kind.clone());
    let net = Supernet::new(&space, Device::Cpu);
    let alphas: Vec<Tensor> = space
        .choices
        .iter()
        .map(|cp| {
            (Tensor::randn([cp.ops.len() as i64], (Kind::Float, Device::Cpu)) * 1e-3).set_requires_grad(true)
        })
        .collect();
    let weights: Vec<Tensor> = alphas.iter().map(|a| a.softmax(0, Kind::Float)).collect();
    let mix = Mix::weighted(&space, &weights);
    let x = input(&kind, 4);
    let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
    let loss = net.forward_mix(&x, &mix, Mode::TRAIN).cross_entropy_loss::<Tensor>(
        &y,
        None,
        Reduction::Mean,
        -100,
        0.0,
    );
    let params = net.trainable_for_mix(&mix);
    // Every op of every choice point is in the mix: a step updates every trainable tensor.
    assert_eq!(params.len(), net.var_store().trainable_variables().len());
    let inputs: Vec<&Tensor> = alphas.iter().chain(params.iter().map(|p| &p.tensor)).collect();
    let grads = Tensor::run_backward(&[loss], &inputs, false, false);
    for (cp, g) in grads[..alphas.len()].iter().enumerate() {
        assert!(
            g.abs().sum(Kind::Double).double_value(&[]) > 0.0,
            "no gradient reaches α of {}",
            space.choices[cp].name
        );
    }
    for (p, g) in params.iter().zip(&grads[alphas.len()..]) {
        assert!(g.abs().sum(Kind::Double).double_value(&[]) > 0.0, "no gradient reaches {}", p.name);
    }
}

#[test]
fn gradients_reach_alpha_and_the_weights_of_every_weighted_op() {
    check_gradients_reach_alpha_and_every_op(nb201());
    check_gradients_reach_alpha_and_every_op(tiny_mobile());
    // DARTS's own relaxation: softmax over the 7 candidates of each of the 28 edges.
    check_gradients_reach_alpha_and_every_op(tiny_darts());
}

/// ProxylessNAS's binary gates: two ops per choice point. `trainable_for_mix` lists the shared
/// tensors and those two ops' modules, no others, and each of them gets a gradient.
#[test]
fn two_gated_ops_use_and_train_exactly_their_tensors() {
    let kind = tiny_mobile();
    let space = Space::full(kind.clone());
    let net = Supernet::new(&space, Device::Cpu);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let (a, b) = (space.sample(&mut rng), space.sample(&mut rng));
    let gates: Vec<Tensor> =
        (0..space.choices.len()).map(|_| Tensor::from(0.5f32).set_requires_grad(true)).collect();
    let choices = (0..space.choices.len())
        .map(|cp| {
            let mut picks = vec![Weighted { op: a.ops[cp], weight: Some(&gates[cp] * 1.0) }];
            if b.ops[cp] != a.ops[cp] {
                picks.push(Weighted { op: b.ops[cp], weight: Some(1.0 - &gates[cp]) });
            }
            picks
        })
        .collect();
    let mix = Mix::new(choices);
    let params = net.trainable_for_mix(&mix);
    let mut expected: Vec<String> =
        net.trainable_for(&a).iter().chain(&net.trainable_for(&b)).map(|p| p.name.clone()).collect();
    expected.sort();
    expected.dedup();
    let mut got: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    got.sort();
    assert_eq!(got, expected);
    let x = input(&kind, 2);
    let loss = net.forward_mix(&x, &mix, Mode::TRAIN).square().mean(Kind::Float);
    let inputs: Vec<&Tensor> = gates.iter().chain(params.iter().map(|p| &p.tensor)).collect();
    let grads = Tensor::run_backward(&[loss], &inputs, false, false);
    for (cp, g) in grads[..gates.len()].iter().enumerate() {
        if b.ops[cp] != a.ops[cp] {
            assert!(g.abs().double_value(&[]) > 0.0, "no gradient reaches the gate of layer {cp}");
        }
    }
    for (p, g) in params.iter().zip(&grads[gates.len()..]) {
        assert!(g.abs().sum(Kind::Double).double_value(&[]) > 0.0, "no gradient reaches {}", p.name);
    }
}
