//! A space with topology rules and linked choice points, written as a new space would be (a type
//! implementing `SpaceDef`), goes through the same `Space` API as the registered ones: its own
//! sampling, mutation and crossover hooks decide the children, its topology check rejects what is
//! not a child, dropping an op from a linked choice point drops it from its partner, and its
//! network builds and runs.
//!
//! The space: NB201's 3-node cell, where node 2 takes exactly one of its two incoming edges in a
//! stand-alone child (a small version of DARTS's "each node takes two of its inputs"), and those
//! two edges share one op list.
use indexmap::IndexMap;
use pwsnas_models::{
    Arch, Cost, Mode, ModelError, Nb201Params, Network, Op, PieceKey, ShrinkDefaults, Space, SpaceDef,
    SpaceKind, Supernet,
};
use rand::{Rng, RngCore, SeedableRng};
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug)]
struct OneInput(Nb201Params);

/// Edges 2<-0 and 2<-1: node 2's inputs.
const INPUTS: [usize; 2] = [1, 2];

impl OneInput {
    fn new() -> OneInput {
        OneInput(Nb201Params {
            nodes: 3,
            channels: 4,
            cells_per_stage: 1,
            input_size: 8,
            ..Nb201Params::default()
        })
    }

    /// Makes a path a child: keeps node 2's input `keep`, with an op other than `none`, and cuts the other.
    fn fit(space: &Space, mut arch: Arch, keep: usize, rng: &mut dyn RngCore) -> Arch {
        let [a, b] = INPUTS;
        let (kept, cut) = if keep == 0 { (a, b) } else { (b, a) };
        arch.ops[cut] = Op::None;
        if arch.ops[kept] == Op::None {
            let real: Vec<Op> = space.choices[kept].ops.iter().copied().filter(|o| *o != Op::None).collect();
            arch.ops[kept] = real[rng.random_range(0..real.len())];
        }
        arch
    }
}

impl SpaceDef for OneInput {
    fn name(&self) -> &'static str {
        "one-input"
    }
    fn params_json(&self) -> serde_json::Value {
        self.0.params_json()
    }
    fn validate(&self) -> pwsnas_models::error::Result<()> {
        self.0.validate()
    }
    fn classes(&self) -> usize {
        self.0.classes()
    }
    fn input_shape(&self) -> [usize; 3] {
        self.0.input_shape()
    }
    fn for_data(&self, channels: usize, size: usize, classes: usize) -> SpaceKind {
        let p = Nb201Params { input_channels: channels, input_size: size, classes, ..self.0.clone() };
        SpaceKind::new(OneInput(p))
    }
    fn choice_point_names(&self) -> Vec<String> {
        self.0.choice_point_names()
    }
    fn full_ops(&self) -> Vec<Vec<Op>> {
        self.0.full_ops()
    }
    fn previous_choices(&self, cp: usize) -> Vec<usize> {
        self.0.previous_choices(cp)
    }
    fn linked(&self, cp: usize) -> Vec<usize> {
        match cp {
            1 => vec![2],
            2 => vec![1],
            _ => Vec::new(),
        }
    }
    fn format_arch(&self, arch: &Arch) -> String {
        self.0.format_arch(arch)
    }
    fn read_arch(&self, s: &str) -> pwsnas_models::error::Result<Arch> {
        self.0.read_arch(s)
    }
    fn check_child(&self, arch: &Arch) -> pwsnas_models::error::Result<()> {
        let taken = INPUTS.iter().filter(|&&e| arch.ops[e] != Op::None).count();
        if taken != 1 {
            return Err(ModelError::MalformedArch {
                arch: self.format_arch(arch),
                reason: format!("node 2 must take exactly one input, takes {taken}"),
            });
        }
        Ok(())
    }
    fn sample_child(&self, space: &Space, rng: &mut dyn RngCore) -> Arch {
        let path = self.sample_path(space, rng);
        let keep = rng.random_range(0..2);
        OneInput::fit(space, path, keep, rng)
    }
    fn mutate(&self, space: &Space, parent: &Arch, prob: f64, rng: &mut dyn RngCore) -> Arch {
        let mut child = parent.clone();
        for (cp, choice) in space.choices.iter().enumerate() {
            if rng.random::<f64>() < prob {
                child.ops[cp] = choice.ops[rng.random_range(0..choice.ops.len())];
            }
        }
        let keep = usize::from(child.ops[INPUTS[0]] == Op::None);
        OneInput::fit(space, child, keep, rng)
    }
    fn crossover(&self, _space: &Space, a: &Arch, b: &Arch, rng: &mut dyn RngCore) -> Arch {
        // Node by node, so that node 2 keeps one parent's input.
        let node1 = if rng.random::<bool>() { a } else { b };
        let node2 = if rng.random::<bool>() { a } else { b };
        Arch { ops: vec![node1.ops[0], node2.ops[1], node2.ops[2]] }
    }
    fn cost(&self, arch: &Arch) -> Cost {
        self.0.cost(arch)
    }
    fn composition(&self, arch: &Arch) -> Vec<(PieceKey, usize)> {
        self.0.composition(arch)
    }
    fn shrink_defaults(&self, candidates: usize) -> ShrinkDefaults {
        self.0.shrink_defaults(candidates)
    }
    fn build(&self, root: &nn::Path, space: &Space) -> Box<dyn Network> {
        self.0.build(root, space)
    }
}

fn space() -> Space {
    Space::full(SpaceKind::new(OneInput::new()))
}

#[test]
fn the_space_s_hooks_decide_its_children() {
    let mut space = space();
    space.remove(0, Op::AvgPool3x3).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let children: Vec<Arch> = (0..50).map(|_| space.sample_child(&mut rng)).collect();
    for (a, b) in children.iter().zip(children.iter().skip(1)) {
        for child in [
            a.clone(),
            space.mutate(a, 0.5, &mut rng),
            space.mutate(a, 1.0, &mut rng),
            space.crossover(a, b, &mut rng),
        ] {
            space.check_child(&child).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // Both inputs of node 2 get used across children.
    assert!(INPUTS.iter().all(|&e| children.iter().any(|c| c.ops[e] != Op::None)));
    // Paths (what the supernet trains) are not bound by the topology rule.
    let paths: Vec<Arch> = (0..50).map(|_| space.sample(&mut rng)).collect();
    assert!(paths.iter().all(|p| space.contains(p)));
    assert!(paths.iter().any(|p| space.check_child(p).is_err()));
}

#[test]
fn parsing_checks_the_topology_of_a_child() {
    let kind = SpaceKind::new(OneInput::new());
    assert!(kind.parse_arch("|nor_conv_3x3~0|+|none~0|skip_connect~1|").is_ok());
    let err = kind.parse_arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|").unwrap_err().to_string();
    assert!(err.contains("node 2 must take exactly one input, takes 2"), "{err}");
    assert!(space().parse_arch("|nor_conv_3x3~0|+|none~0|none~1|").is_err());
}

#[test]
fn linked_choice_points_shrink_together() {
    let mut space = space();
    space.remove(1, Op::NorConv1x1).unwrap();
    assert!(!space.choices[1].ops.contains(&Op::NorConv1x1));
    assert!(!space.choices[2].ops.contains(&Op::NorConv1x1));
    assert_eq!(space.choices[0].ops.len(), 5);
    // Choices whose linked lists differ do not fit the space.
    let mut choices: IndexMap<String, Vec<Op>> =
        space.choices.iter().map(|cp| (cp.name.clone(), cp.ops.clone())).collect();
    assert_eq!(Space::with_choices(space.kind.clone(), &choices).unwrap(), space);
    choices["2<-1"] = vec![Op::None, Op::SkipConnect];
    let err = Space::with_choices(space.kind.clone(), &choices).unwrap_err().to_string();
    assert!(err.contains("'2<-0' and '2<-1' share one op list"), "{err}");
    // Ops leave a linked group together, down to its last one.
    for op in [Op::None, Op::SkipConnect, Op::NorConv3x3] {
        space.remove(2, op).unwrap();
    }
    assert!(space.remove(1, Op::AvgPool3x3).is_err());
    assert_eq!(space.choices[1].ops, [Op::AvgPool3x3]);
    assert_eq!(space.choices[2].ops, [Op::AvgPool3x3]);
}

#[test]
fn the_space_s_network_builds_and_runs() {
    let space = space();
    let net = Supernet::new(&space, Device::Cpu);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let child = space.sample_child(&mut rng);
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| net.extract_child(&child).unwrap().forward(&x, &child, Mode::EVAL));
    assert_eq!(logits.size(), [2, 10]);
}
