//! DARTS's α steps learn to prefer the op that helps, on a tiny problem. In a test binary of its
//! own, so that no other test draws from libtorch's global generator while this one is seeded
//! (the outcome of a few steps depends on the initial weights).
use indexmap::IndexMap;
use pwsnas::method::alpha::{Adam, Alphas};
use pwsnas::method::darts::alpha_step;
use pwsnas::settings::TrainSettings;
use pwsnas::train::epoch::train_step;
use pwsnas::train::sgd::Sgd;
use pwsnas_models::{Arch, Mode, Nb201Params, Op, Space, SpaceKind, Supernet};
use tch::Tensor;

/// A tiny problem where `skip_connect` is clearly better than `nor_conv_3x3`: the class is the
/// sign of a noisy stripe pattern, the network is trained on the skip path only (the conv keeps
/// its random initial weights), so mixing the conv in only adds a random filtering the trained
/// layers do not read. DARTS's α steps must then move softmax(α) to the skip, on every edge. (Not
/// `none` against an op: the BatchNorm after a cell normalises the mix's scale away, so α would
/// learn nothing there.)
#[test]
fn alpha_learns_to_prefer_the_op_that_helps() {
    tch::manual_seed(0);
    // One edge per cell (nodes 2), so that its op alone decides what the cell passes on.
    let kind = SpaceKind::new(Nb201Params {
        nodes: 2,
        channels: 4,
        cells_per_stage: 1,
        classes: 2,
        input_size: 8,
        input_channels: 1,
        ..Default::default()
    });
    let names = kind.choice_point_names();
    let choices: IndexMap<String, Vec<Op>> =
        names.iter().map(|n| (n.clone(), vec![Op::SkipConnect, Op::NorConv3x3])).collect();
    let space = Space::with_choices(kind, &choices).unwrap();
    let net = Supernet::new(&space, tch::Device::Cpu);
    let alphas = Alphas::init(&space, 0, tch::Device::Cpu);
    let mut adam = Adam::new(0.1, [0.5, 0.999], 1e-3, &alphas.t);
    let cfg = TrainSettings {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 3e-4,
        grad_clip: Some(5.0),
        ..Default::default()
    };
    let mut sgd = Sgd::new(&cfg);
    let cpu = (tch::Kind::Float, tch::Device::Cpu);
    let y = Tensor::randint(2, [64], (tch::Kind::Int64, tch::Device::Cpu));
    let stripes =
        Tensor::from_slice(&[1.0f32, 1.0, -2.0, 1.0, 1.0, -2.0, 1.0, 1.0]).view([1, 8]).repeat([8, 1]);
    let sign = (y.to_kind(tch::Kind::Float) * 2.0 - 1.0).view([64, 1, 1, 1]);
    let x = Tensor::randn([64, 1, 8, 8], cpu) * 0.3 + sign * stripes.view([1, 1, 8, 8]);
    // Weights trained on the skip path first: under them, skip is clearly the better op.
    let skips = Arch { ops: vec![Op::SkipConnect; names.len()] };
    for _ in 0..25 {
        train_step(&net, None, &mut sgd, &cfg, &x, &y, std::slice::from_ref(&skips), 0.05, Mode::TRAIN);
    }
    let before = alphas.probs();
    for _ in 0..10 {
        alpha_step(&net, &space, &alphas, &mut adam, (&x, &y), &cfg, Mode::TRAIN);
    }
    let after = alphas.probs();
    for (b, a) in before.iter().zip(&after) {
        assert!(a != b, "α moved");
    }
    for ((name, cp), p) in names.iter().zip(&space.choices).zip(after) {
        let skip = cp.ops.iter().position(|o| *o == Op::SkipConnect).unwrap();
        assert!(p[skip] > 0.6, "{name}: p(skip_connect) = {:.4} after 10 α steps", p[skip]);
    }
    assert_eq!(space.derive_child(&alphas.probs()).ops, vec![Op::SkipConnect; names.len()]);
}
