//! Every op of both spaces survives export: a tiny stand-alone child containing it, with random
//! weights and non-trivial BatchNorm statistics and affine parameters, is lowered, BN-folded,
//! rewritten (the rewrites of `pwsnas_onnx::Graph::optimize`) and run in ONNX Runtime (all graph
//! optimisations on), and its logits match libtorch's eval-mode logits to within 1e-4 of the logit
//! scale; so does the plain lowering, and the fp16 export within its tolerance. The exported graphs
//! have no BatchNormalization and no Identity nodes, take any batch size, carry readable metadata,
//! and pass the official ONNX checker.
mod onnx_check;

use pwsnas::export::metadata::ModelInfo;
use pwsnas::export::onnx_bytes_as;
use pwsnas::ort_runtime::{runtime, Ep, SessionConfig};
use pwsnas_models::{MobileParams, MobileStage, Mode, Nb201Params, Op, SpaceKind, Supernet};
use pwsnas_onnx::{Lowering, Precision};
use tch::{Device, Kind, Tensor};

fn nb201(nodes: usize, cells: usize) -> SpaceKind {
    SpaceKind::new(Nb201Params {
        nodes,
        channels: 4,
        cells_per_stage: cells,
        classes: 5,
        input_channels: 1,
        input_size: 8,
        ..Nb201Params::default()
    })
}

/// Stem 8 → layers 8→8 (s1), 8→8 (s1), 8→16 (s2), 16→16 (s1): identity allowed on layers 0, 1, 3.
fn mobile() -> SpaceKind {
    SpaceKind::new(MobileParams {
        stem_channels: 8,
        stages: vec![
            MobileStage { channels: 8, repeats: 2, stride: 1 },
            MobileStage { channels: 16, repeats: 2, stride: 2 },
        ],
        head_channels: 32,
        classes: 5,
        input_channels: 3,
        input_size: 12,
        ..MobileParams::default()
    })
}

/// Random BatchNorm statistics and affine parameters everywhere (fresh ones are mean 0, var 1,
/// γ 1, β 0, which would make folding trivially right).
fn perturb_batch_norms(net: &Supernet) {
    let tensors = net.named_tensors();
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    tch::no_grad(|| {
        for (name, t) in &tensors {
            let Some(prefix) = name.strip_suffix("running_mean") else { continue };
            let c = t.size()[0];
            let opts = (Kind::Float, Device::Cpu);
            t.shallow_clone().copy_(&(Tensor::randn([c], opts) * 0.5));
            find(&format!("{prefix}running_var")).unwrap().copy_(&(Tensor::rand([c], opts) * 1.5 + 0.3));
            find(&format!("{prefix}weight")).unwrap().copy_(&(Tensor::rand([c], opts) + 0.5));
            find(&format!("{prefix}bias")).unwrap().copy_(&(Tensor::randn([c], opts) * 0.3));
        }
    });
}

fn info(kind: &SpaceKind, arch: &str) -> ModelInfo {
    let [c, h, w] = kind.input_shape();
    ModelInfo {
        arch: arch.into(),
        space: kind.name().into(),
        space_params: kind.params_json(),
        input_shape: [c, h, w],
        mean: vec![0.5; c],
        std: vec![0.25; c],
        classes: (0..kind.classes()).map(|i| format!("c{i}")).collect(),
        dataset: "random".into(),
        pwsnas_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Exports `arch` with random weights (rewritten, fp32), checks ORT against libtorch at batch 5 and
/// 1, and returns the model bytes.
fn export_and_compare(kind: &SpaceKind, arch: &str) -> Vec<u8> {
    export_as(kind, arch, Lowering::Optimized, Precision::Fp32, 1e-4)
}

/// [`export_and_compare`] with a lowering, a precision and a tolerance (of the logit scale).
fn export_as(
    kind: &SpaceKind,
    arch: &str,
    lowering: Lowering,
    precision: Precision,
    tolerance: f32,
) -> Vec<u8> {
    let child = kind.parse_arch(arch).unwrap();
    tch::manual_seed(7);
    let net = Supernet::standalone(kind, &child, Device::Cpu);
    perturb_batch_norms(&net);
    let meta = info(kind, arch);
    let bytes = onnx_bytes_as(&net, &child, &meta, lowering, precision);

    let s = pwsnas_onnx::summary(&bytes).unwrap();
    for op in ["BatchNormalization", "Identity"] {
        assert!(!s.op_counts.contains_key(op), "{arch}: {op} nodes in {:?}", s.op_counts);
    }
    assert_eq!(s.opset, Some(17));

    let cfg = SessionConfig { ep: Ep::Cpu, threads: 1 };
    let mut model = runtime(None, Ep::Cpu).unwrap().session_from_bytes(&bytes, arch, cfg).unwrap();
    assert_eq!(ModelInfo::from_entries(&model.metadata().unwrap(), arch).unwrap(), meta);

    let [c, h, w] = kind.input_shape();
    for n in [5usize, 1] {
        let x = Tensor::randn([n as i64, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu));
        let torch = tch::no_grad(|| net.forward(&x, &child, Mode::EVAL));
        let torch = Vec::<f32>::try_from(&torch.flatten(0, -1)).unwrap();
        let input = Vec::<f32>::try_from(&x.flatten(0, -1)).unwrap();
        let ort = model.run(&input, [n, c, h, w]).unwrap();
        assert_eq!(ort.len(), n * kind.classes(), "{arch}: output size at batch {n}");
        let scale = torch.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = torch.iter().zip(&ort).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0, "{arch}: all logits are zero, the comparison would be vacuous");
        assert!(
            diff <= tolerance * scale,
            "{arch} ({lowering:?}, {precision:?}) at batch {n}: max |ORT - libtorch| = {diff:e} exceeds {tolerance:e} of the logit scale {scale}"
        );
    }
    bytes
}

fn nb201_every_edge(op: Op) -> String {
    format!("|{op}~0|+|{op}~0|{op}~1|")
}

#[test]
fn nb201_none_everywhere_lowers_to_zeros() {
    // Every node of the cell receives only `none`: the cell outputs zeros, as `Clip(x, 0, 0)`
    // (a static shape, unlike `ConstantOfShape`, so ONNX Runtime can plan the memory after it).
    let bytes = export_and_compare(&nb201(3, 1), &nb201_every_edge(Op::None));
    let ops = pwsnas_onnx::summary(&bytes).unwrap().op_counts;
    assert!(ops.contains_key("Clip") && !ops.contains_key("ConstantOfShape"), "{ops:?}");
}

#[test]
fn nb201_skip_connect() {
    export_and_compare(&nb201(3, 1), &nb201_every_edge(Op::SkipConnect));
}

#[test]
fn nb201_nor_conv_1x1() {
    export_and_compare(&nb201(3, 1), &nb201_every_edge(Op::NorConv1x1));
}

#[test]
fn nb201_nor_conv_3x3() {
    export_and_compare(&nb201(3, 1), &nb201_every_edge(Op::NorConv3x3));
}

#[test]
fn nb201_avg_pool_3x3() {
    let bytes = export_and_compare(&nb201(3, 1), &nb201_every_edge(Op::AvgPool3x3));
    assert!(pwsnas_onnx::summary(&bytes).unwrap().op_counts.contains_key("AveragePool"));
}

#[test]
fn nb201_inner_node_with_only_none_inputs_feeds_zeros_onward() {
    // Node 2 gets only `none` (zeros), which then goes through a pool and a 1x1 conv; two cells per
    // stage so cells follow cells and reductions.
    export_and_compare(
        &nb201(4, 2),
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    );
}

fn mobile_arch(kind: &SpaceKind, op: Op) -> String {
    let p: &MobileParams = kind.params().expect("a mobile space");
    let ops: Vec<String> = p
        .layers()
        .iter()
        .map(|l| if op == Op::Identity && !l.allows_identity() { "mb_k3_e3".into() } else { op.name() })
        .collect();
    ops.join(",")
}

#[test]
fn mobile_every_mbconv() {
    let kind = mobile();
    for kernel in [3, 5, 7] {
        for expand in [3, 6] {
            export_and_compare(&kind, &mobile_arch(&kind, Op::MbConv { kernel, expand }));
        }
    }
}

#[test]
fn mobile_identity() {
    let kind = mobile();
    let arch = mobile_arch(&kind, Op::Identity);
    assert_eq!(arch, "identity,identity,mb_k3_e3,identity");
    export_and_compare(&kind, &arch);
}

#[test]
fn official_onnx_checker_accepts_an_nb201_and_a_mobile_model() {
    let nb = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|";
    onnx_check::check(&export_and_compare(&nb201(4, 1), nb), nb);
    let kind = mobile();
    let mb = "identity,mb_k5_e6,mb_k7_e3,identity";
    onnx_check::check(&export_and_compare(&kind, mb), mb);
}

/// Node 1 receives only `none`, so zeros flow into node 2 (a skip) and node 3 (a pool and a conv);
/// node 0 feeds two narrow convs (merged) and node 3 sums three terms.
const ZERO_NODE_ARCH: &str =
    "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|";

#[test]
fn every_rewrite_keeps_the_logits_and_the_checker_accepts_the_result() {
    let kind = nb201(4, 2);
    let plain = export_as(&kind, ZERO_NODE_ARCH, Lowering::Plain, Precision::Fp32, 1e-4);
    let optimized = export_and_compare(&kind, ZERO_NODE_ARCH);
    onnx_check::check(&plain, "the plain lowering");
    onnx_check::check(&optimized, "the rewritten graph");
    let (p, o) = (pwsnas_onnx::summary(&plain).unwrap(), pwsnas_onnx::summary(&optimized).unwrap());
    // The plain lowering keeps its Sums and zero terms; the rewrites leave none, merge node 0's narrow
    // convs (4 channels) and drop the 1×1 conv of zeros.
    assert!(p.op_counts.contains_key("Sum"), "{:?}", p.op_counts);
    assert!(!o.op_counts.contains_key("Sum"), "{:?}", o.op_counts);
    // One Split per cell (two per stage) of each stage whose channels (4, 8, 16) are below a block
    // of this machine's blocked layout: 4 with AVX-512 (16 channels a block), 2 with AVX2 (8).
    let narrow = [4, 8, 16].iter().filter(|&&c| c < pwsnas_onnx::nchwc_block()).count();
    assert_eq!(o.op_counts.get("Split").copied().unwrap_or(0), 2 * narrow, "{:?}", o.op_counts);
    assert!(o.op_counts["Conv"] < p.op_counts["Conv"], "{:?} vs {:?}", o.op_counts, p.op_counts);
    assert_eq!((o.inputs.clone(), o.outputs.clone()), (p.inputs.clone(), p.outputs.clone()));
    assert_eq!(pwsnas_onnx::read_metadata(&plain).unwrap(), pwsnas_onnx::read_metadata(&optimized).unwrap());
}

#[test]
fn fp16_runs_in_onnx_runtime_on_the_cpu_within_half_precision() {
    // ONNX Runtime's CPU provider runs the fp16 graph (casting where it has no fp16 kernel).
    let nb = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|";
    let bytes = export_as(&nb201(4, 1), nb, Lowering::Optimized, Precision::Fp16, 1e-2);
    onnx_check::check(&bytes, "the fp16 nb201 model");
    let kind = mobile();
    let mb = "identity,mb_k5_e6,mb_k3_e3,identity";
    onnx_check::check(
        &export_as(&kind, mb, Lowering::Optimized, Precision::Fp16, 1e-2),
        "the fp16 mobile model",
    );
}
