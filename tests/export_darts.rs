//! Every DARTS op module survives export: each one, with random weights and non-trivial BatchNorm
//! statistics (and affine parameters where it has them), is lowered, BN-folded and run in ONNX Runtime
//! (all graph optimisations on), and matches libtorch's eval-mode output within 1e-4 of its scale at
//! batch 5 and 1; whole tiny DARTS networks (published genotypes, and a supernet child with zero nodes
//! and pools followed by the search network's BN) do too. The graphs have no BatchNormalization left
//! and pass the official ONNX checker.
mod onnx_check;

use pwsnas::ort_runtime::{runtime, Ep, SessionConfig};
use pwsnas_models::darts::net::{DartsNet, Role};
use pwsnas_models::darts::ops::{DartsOp, FactorizedReduce, Preprocess};
use pwsnas_models::darts::{cell, DartsParams, Genotype};
use pwsnas_models::net::layers::BatchNorm;
use pwsnas_models::net::Module;
use pwsnas_models::{Arch, Mix, Mode, Network, Op, SpaceDef};
use pwsnas_onnx::{Dim, GraphBuilder, Metadata, Value};
use tch::{nn, Device, Kind, Tensor};

/// Random running statistics everywhere, and random γ, β where they are trainable (fresh ones are
/// mean 0, var 1, γ 1, β 0, which would make folding trivially right).
fn perturb(bns: &[&BatchNorm]) {
    let opts = (Kind::Float, Device::Cpu);
    tch::no_grad(|| {
        for bn in bns {
            let c = bn.running_mean.tensor.size()[0];
            bn.running_mean.tensor.shallow_clone().copy_(&(Tensor::randn([c], opts) * 0.5));
            bn.running_var.tensor.shallow_clone().copy_(&(Tensor::rand([c], opts) * 1.5 + 0.3));
            if bn.affine {
                bn.weight.tensor.shallow_clone().copy_(&(Tensor::rand([c], opts) + 0.5));
                bn.bias.tensor.shallow_clone().copy_(&(Tensor::randn([c], opts) * 0.3));
            }
        }
    });
}

/// A model exported by [`assert_parity`]: its bytes and name (for the checker) and its op types.
struct Exported {
    bytes: Vec<u8>,
    what: String,
    ops: Vec<String>,
}

/// The official checker on every model, with one Python process.
fn check(models: &[Exported]) {
    let named: Vec<(Vec<u8>, String)> = models.iter().map(|m| (m.bytes.clone(), m.what.clone())).collect();
    onnx_check::check_all(&named);
}

/// Lowers `lower` for inputs `[batch, c, h, w]`, folds it, checks it has no BatchNormalization and
/// that ONNX Runtime matches `forward` at batch 5 and 1.
fn assert_parity(
    what: &str,
    [c, h, w]: [usize; 3],
    forward: impl Fn(&Tensor) -> Tensor,
    lower: impl FnOnce(&mut GraphBuilder, &Value) -> Value,
) -> Exported {
    let x5 = Tensor::randn([5, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu));
    let out_dims: Vec<usize> =
        tch::no_grad(|| forward(&x5)).size()[1..].iter().map(|&d| d as usize).collect();
    let dims = |d: &[usize]| std::iter::once(Dim::Batch).chain(d.iter().map(|&n| Dim::Fixed(n))).collect();
    let mut g = GraphBuilder::new(what, "input", dims(&[c, h, w]));
    let input = g.input();
    let y = lower(&mut g, &input);
    let mut graph = g.finish(&y, dims(&out_dims));
    graph.fold_batch_norm();
    assert_eq!(graph.node_count("BatchNormalization"), 0, "{what}: {:?}", graph.op_types());
    let bytes = graph.to_onnx_bytes(&Metadata::new());

    let cfg = SessionConfig { ep: Ep::Cpu, threads: 1 };
    let mut model = runtime(None, Ep::Cpu).unwrap().session_from_bytes(&bytes, what, cfg).unwrap();
    for x in [x5.shallow_clone(), x5.narrow(0, 0, 1)] {
        let n = x.size()[0] as usize;
        let torch = tch::no_grad(|| forward(&x));
        let torch = Vec::<f32>::try_from(&torch.flatten(0, -1)).unwrap();
        let input = Vec::<f32>::try_from(&x.contiguous().flatten(0, -1)).unwrap();
        let ort = model.run(&input, [n, c, h, w]).unwrap();
        assert_eq!(ort.len(), torch.len(), "{what}: output size at batch {n}");
        let scale = torch.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = torch.iter().zip(&ort).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0, "{what}: the output is all zeros, the comparison would be vacuous");
        assert!(
            diff <= 1e-4 * scale,
            "{what} at batch {n}: max |ORT - libtorch| = {diff:e} exceeds 1e-4 of the output scale {scale}"
        );
    }
    Exported { bytes, what: what.to_string(), ops: graph.op_types() }
}

/// One op module on an edge of `c` channels at `size`, with `stride`.
fn op_parity(op: Op, c: usize, size: usize, stride: usize, pool_bn: bool) -> Exported {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = DartsOp::new(&vs.root(), op, c, stride, pool_bn);
    perturb(&m.batch_norms());
    let what = format!("{op} stride {stride}{}", if pool_bn { " + BN" } else { "" });
    assert_parity(
        &what,
        [c, size, size],
        |x| m.forward(x, Mode::EVAL).expect("not none"),
        |g, x| m.lower(g, x).expect("not none"),
    )
}

#[test]
fn sep_and_dilated_convs() {
    let mut models = Vec::new();
    for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
        let sep = op_parity(Op::SepConv { kernel }, 4, 8, stride, false);
        // ReLU, depthwise, pointwise (BN folded) twice.
        assert_eq!(sep.ops, ["Relu", "Conv", "Conv", "Relu", "Conv", "Conv"]);
        let dil = op_parity(Op::DilConv { kernel }, 4, 10, stride, false);
        assert_eq!(dil.ops, ["Relu", "Conv", "Conv"]);
        models.extend([sep, dil]);
    }
    check(&models);
}

#[test]
fn factorized_reduce_skip_and_preprocessing() {
    // skip_connect at stride 2: both halves of the BN fold into their convs, no Mul/Add left.
    let skip = op_parity(Op::SkipConnect, 6, 8, 2, false);
    assert_eq!(skip.ops, ["Relu", "Slice", "Conv", "Conv", "Concat"]);
    // Preprocessing of a cell input from before a reduction cell, which changes the channels.
    let vs = nn::VarStore::new(Device::Cpu);
    let m = FactorizedReduce::new(&(vs.root() / "fr"), 6, 4);
    perturb(&[&m.bn]);
    let fr = assert_parity(
        "factorized_reduce 6->4",
        [6, 8, 8],
        |x| m.forward(x, Mode::EVAL),
        |g, x| m.lower(g, x),
    );
    let pre = Preprocess::new(&(vs.root() / "pre"), 6, 4, false);
    perturb(&pre.batch_norms());
    let relu_conv_bn =
        assert_parity("relu_conv_bn 6->4", [6, 8, 8], |x| pre.forward(x, Mode::EVAL), |g, x| pre.lower(g, x));
    assert_eq!(relu_conv_bn.ops, ["Relu", "Conv"]);
    check(&[skip, fr, relu_conv_bn]);
}

#[test]
fn pools_with_and_without_the_search_networks_bn() {
    let mut models = Vec::new();
    for op in [Op::MaxPool3x3, Op::AvgPool3x3] {
        for stride in [1, 2] {
            let bare = op_parity(op, 3, 8, stride, false);
            assert_eq!(bare.ops.len(), 1, "{:?}", bare.ops);
            // The affine-free BN after a pool cannot fold into a conv: it stays as Mul + Add.
            let with_bn = op_parity(op, 3, 8, stride, true);
            assert_eq!(with_bn.ops[1..], ["Mul", "Add"]);
            models.extend([bare, with_bn]);
        }
    }
    check(&models);
}

fn tiny() -> DartsParams {
    DartsParams {
        channels: 4,
        layers: 4,
        classes: 5,
        input_channels: 1,
        input_size: 8,
        ..DartsParams::default()
    }
}

fn network_parity(p: &DartsParams, lists: &[Vec<Op>], ops: &[Op], role: Role, what: &str) -> Exported {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = DartsNet::new(&vs.root(), p, lists, role);
    let mut bns = net.shared_batch_norms();
    bns.extend(net.edges().flat_map(|e| e.module(ops[e.cp]).batch_norms()));
    perturb(&bns);
    let mix = Mix::single(&Arch { ops: ops.to_vec() });
    assert_parity(
        what,
        p.input_shape(),
        |x| net.forward(x, &mix, &[], Mode::EVAL),
        |g, _| net.lower(g, ops, &[]),
    )
}

#[test]
fn published_genotypes_as_tiny_networks() {
    let p = tiny();
    let mut models = Vec::new();
    for name in Genotype::NAMES {
        let ops = Genotype::named(name).unwrap().to_ops();
        let lists: Vec<Vec<Op>> = ops.iter().map(|&op| vec![op]).collect();
        let net = network_parity(&p, &lists, &ops, Role::Standalone, name);
        assert!(
            net.ops.iter().any(|t| t == "Slice"),
            "{name}: a FactorizedReduce follows each reduction cell"
        );
        models.push(net);
    }
    check(&models);
}

#[test]
fn supernet_child_with_zero_nodes() {
    // Every op on some edge; node 3 of both cells and node 5 of the reduction cell keep only `none`
    // (zeros, made from a stride-2 Slice in the reduction cell), pools carry the search BN.
    let p = tiny();
    let mut ops: Vec<Op> = (0..28).map(|cp| Op::DARTS[(cp * 3 + 1) % 8]).collect();
    for kind_offset in [0, 14] {
        for i in 0..3 {
            ops[kind_offset + cell::edge_index(3, i)] = Op::None;
        }
    }
    for i in 0..5 {
        ops[14 + cell::edge_index(5, i)] = Op::None;
    }
    assert!(ops.contains(&Op::MaxPool3x3) && ops.contains(&Op::AvgPool3x3) && ops.contains(&Op::SkipConnect));
    let net = network_parity(&p, &p.full_ops(), &ops, Role::Supernet, "supernet child");
    assert!(net.ops.iter().any(|t| t == "Clip"), "zeros are Clip(x, 0, 0): {:?}", net.ops);
    check(&[net]);
}
