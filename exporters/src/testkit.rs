//! Test support: a naive reference evaluator of the ONNX operators whose numerics the tests check, a
//! deterministic pseudo-random source, a graph that uses every builder method, and the official ONNX
//! checker (`onnx.checker.check_model`, from the package `cargo xtask setup` installs).
//!
//! The evaluator runs on the decoded [`ModelProto`], not on the IR, so it checks the ONNX encoding
//! (attribute names, weight layout, broadcast shapes) as well as the passes. It computes in `f64` and is
//! written for clarity, not speed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use crate::proto::tensor_proto::DataType;
use crate::proto::{AttributeProto, ModelProto, NodeProto};
use crate::{decode_model, BatchNormParams, ConvAttrs, Dim, Graph, GraphBuilder, Metadata, SliceAxis};

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Array {
    pub(crate) dims: Vec<usize>,
    pub(crate) data: Vec<f64>,
}

impl Array {
    pub(crate) fn random(dims: &[usize], seed: u64) -> Array {
        let n = dims.iter().product();
        Array { dims: dims.to_vec(), data: uniform(n, seed, -1.0, 1.0).into_iter().map(f64::from).collect() }
    }

    fn at(&self, idx: &[usize]) -> f64 {
        let flat = idx.iter().zip(&self.dims).fold(0, |acc, (&i, &d)| acc * d + i);
        self.data[flat]
    }
}

/// `n` values uniform in `[lo, hi)` from a fixed linear congruential generator.
pub(crate) fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * unit
        })
        .collect()
}

/// Batch-norm parameters for `c` channels with a non-trivial scale and shift.
pub(crate) fn bn_params(c: usize, seed: u64) -> BatchNormParams {
    BatchNormParams {
        gamma: uniform(c, seed, 0.5, 1.5),
        beta: uniform(c, seed + 1, -0.5, 0.5),
        mean: uniform(c, seed + 2, -0.5, 0.5),
        var: uniform(c, seed + 3, 0.1, 2.0),
        eps: 1e-5,
    }
}

/// Runs the exported model of `graph` on `input` and returns its output.
pub(crate) fn run_graph(graph: &Graph, input: &Array) -> Array {
    let model = decode_model(&graph.to_onnx_bytes(&Metadata::new())).expect("export decodes");
    run(&model, input)
}

/// Evaluates a model with one input and one output. Supports every operator the IR has (`Add`,
/// `Mul` and `Sum` with broadcasting, `Split` into equal parts); panics on anything else.
pub(crate) fn run(model: &ModelProto, input: &Array) -> Array {
    let graph = model.graph.as_ref().expect("model has a graph");
    let mut env: HashMap<&str, Array> = HashMap::new();
    for t in &graph.initializer {
        let data: Vec<f64> = if t.data_type() == DataType::Int64 as i32 {
            t.raw_data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
        } else if t.data_type() == DataType::Float16 as i32 {
            t.raw_data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f64()).collect()
        } else {
            t.raw_data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
                .collect()
        };
        env.insert(t.name(), Array { dims: t.dims.iter().map(|&d| d as usize).collect(), data });
    }
    env.insert(graph.input[0].name(), input.clone());
    for node in &graph.node {
        let args: Vec<&Array> =
            node.input.iter().filter(|i| !i.is_empty()).map(|i| &env[i.as_str()]).collect();
        let map = |f: &dyn Fn(f64) -> f64| Array {
            dims: args[0].dims.clone(),
            data: args[0].data.iter().map(|&v| f(v)).collect(),
        };
        let outs = match node.op_type() {
            "Conv" => vec![conv(node, &args)],
            "BatchNormalization" => vec![batch_norm(&args, attr(node, "epsilon").f().into())],
            "Relu" => vec![map(&|v| v.max(0.0))],
            // To FLOAT16: rounded to half precision; to FLOAT: already representable.
            "Cast" if attr(node, "to").i() == DataType::Float16 as i64 => {
                vec![map(&|v| half::f16::from_f64(v).to_f64())]
            }
            "Cast" => vec![args[0].clone()],
            "Clip" => vec![map(&|v| v.max(args[1].data[0]).min(args[2].data[0]))],
            "Add" => vec![broadcast(args[0], args[1], |a, b| a + b)],
            "Mul" => vec![broadcast(args[0], args[1], |a, b| a * b)],
            "Sum" => vec![args[1..].iter().fold(args[0].clone(), |acc, x| broadcast(&acc, x, |a, b| a + b))],
            "AveragePool" | "MaxPool" => vec![pool(node, args[0])],
            "GlobalAveragePool" => vec![global_avg_pool(args[0])],
            "Flatten" => {
                let n = args[0].dims[0];
                vec![Array { dims: vec![n, args[0].data.len() / n], data: args[0].data.clone() }]
            }
            "Gemm" => vec![gemm(&args)],
            "Concat" => vec![concat(&args, attr(node, "axis").i() as usize)],
            "Split" => split(node, args[0], node.output.len()),
            "Shape" => vec![Array {
                dims: vec![args[0].dims.len()],
                data: args[0].dims.iter().map(|&d| d as f64).collect(),
            }],
            "ConstantOfShape" => {
                let dims: Vec<usize> = args[0].data.iter().map(|&d| d as usize).collect();
                vec![Array { data: vec![0.0; dims.iter().product()], dims }]
            }
            "Slice" => vec![slice(&args)],
            other => panic!("reference evaluator has no {other}"),
        };
        assert_eq!(outs.len(), node.output.len(), "{}: outputs", node.name());
        for (name, out) in node.output.iter().zip(outs) {
            env.insert(name.as_str(), out);
        }
    }
    env.remove(graph.output[0].name()).expect("output computed")
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> &'a AttributeProto {
    node.attribute.iter().find(|a| a.name() == name).unwrap_or_else(|| panic!("{} lacks {name}", node.name()))
}

fn conv(node: &NodeProto, args: &[&Array]) -> Array {
    let (x, w) = (args[0], args[1]);
    let ints = |name| attr(node, name).ints.iter().map(|&v| v as usize).collect::<Vec<_>>();
    let (strides, pads, dilations) = (ints("strides"), ints("pads"), ints("dilations"));
    let groups = attr(node, "group").i() as usize;
    let [n, c, h, wd] = x.dims[..] else { panic!("conv input must be 4-D") };
    let [m, cg, kh, kw] = w.dims[..] else { panic!("conv weight must be 4-D") };
    assert_eq!(c, cg * groups, "{}: channels", node.name());
    let oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) / strides[0] + 1;
    let ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) / strides[1] + 1;
    let mut out = Array { dims: vec![n, m, oh, ow], data: Vec::with_capacity(n * m * oh * ow) };
    for b in 0..n {
        for o in 0..m {
            let g = o / (m / groups);
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = args.get(2).map_or(0.0, |bias| bias.data[o]);
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (y * strides[0] + ky * dilations[0]) as isize - pads[0] as isize;
                                let ix = (xo * strides[1] + kx * dilations[1]) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let v = x.at(&[b, g * cg + ci, iy as usize, ix as usize]);
                                acc += v * w.at(&[o, ci, ky, kx]);
                            }
                        }
                    }
                    out.data.push(acc);
                }
            }
        }
    }
    out
}

/// `AveragePool` (with or without the padding counted) and `MaxPool` with square windows.
fn pool(node: &NodeProto, x: &Array) -> Array {
    let ints = |name| attr(node, name).ints.iter().map(|&v| v as usize).collect::<Vec<_>>();
    let (k, s, p) = (ints("kernel_shape")[0], ints("strides")[0], ints("pads")[0]);
    let max = node.op_type() == "MaxPool";
    let include_pad = !max && attr(node, "count_include_pad").i() == 1;
    let [n, c, h, w] = x.dims[..] else { panic!("pool input must be 4-D") };
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = Array { dims: vec![n, c, oh, ow], data: Vec::with_capacity(n * c * oh * ow) };
    for b in 0..n {
        for ch in 0..c {
            for y in 0..oh {
                for xo in 0..ow {
                    let (mut acc, mut count) = (if max { f64::NEG_INFINITY } else { 0.0 }, 0);
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (y * s + ky) as isize - p as isize;
                            let ix = (xo * s + kx) as isize - p as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x.at(&[b, ch, iy as usize, ix as usize]);
                            acc = if max { acc.max(v) } else { acc + v };
                            count += 1;
                        }
                    }
                    out.data.push(match (max, include_pad) {
                        (true, _) => acc,
                        (false, true) => acc / (k * k) as f64,
                        (false, false) => acc / count as f64,
                    });
                }
            }
        }
    }
    out
}

fn global_avg_pool(x: &Array) -> Array {
    let inner: usize = x.dims[2..].iter().product();
    let data = x.data.chunks(inner).map(|c| c.iter().sum::<f64>() / inner as f64).collect();
    Array { dims: vec![x.dims[0], x.dims[1], 1, 1], data }
}

/// `x Wᵀ + b` (`transB = 1`, as the IR writes it).
fn gemm(args: &[&Array]) -> Array {
    let (x, w) = (args[0], args[1]);
    let (n, k, m) = (x.dims[0], x.dims[1], w.dims[0]);
    let mut data = Vec::with_capacity(n * m);
    for i in 0..n {
        for o in 0..m {
            let dot: f64 = (0..k).map(|j| x.data[i * k + j] * w.data[o * k + j]).sum();
            data.push(dot + args.get(2).map_or(0.0, |b| b.data[o]));
        }
    }
    Array { dims: vec![n, m], data }
}

/// Splits of `x` along an axis: (outer, inner) blocks of the flat data.
fn blocks(dims: &[usize], axis: usize) -> (usize, usize) {
    (dims[..axis].iter().product(), dims[axis + 1..].iter().product())
}

/// `Split` into `parts` equal parts (no `split` input).
fn split(node: &NodeProto, x: &Array, parts: usize) -> Vec<Array> {
    let axis = attr(node, "axis").i() as usize;
    let sizes = vec![x.dims[axis] / parts; parts];
    let (outer, inner) = blocks(&x.dims, axis);
    let mut start = 0;
    sizes
        .iter()
        .map(|&size| {
            let mut dims = x.dims.clone();
            dims[axis] = size;
            let mut data = Vec::new();
            for o in 0..outer {
                let row = o * x.dims[axis] * inner;
                data.extend_from_slice(&x.data[row + start * inner..row + (start + size) * inner]);
            }
            start += size;
            Array { dims, data }
        })
        .collect()
}

fn batch_norm(args: &[&Array], eps: f64) -> Array {
    let x = args[0];
    let (c, inner) = (x.dims[1], x.dims[2..].iter().product::<usize>());
    let data = x.data.iter().enumerate().map(|(i, &v)| {
        let ch = i / inner % c;
        let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|k| args[k].data[ch]);
        (v - mean) / (var + eps).sqrt() * gamma + beta
    });
    Array { dims: x.dims.clone(), data: data.collect() }
}

/// Concatenation along a non-negative `axis`.
fn concat(args: &[&Array], axis: usize) -> Array {
    let outer: usize = args[0].dims[..axis].iter().product();
    let mut dims = args[0].dims.clone();
    dims[axis] = args.iter().map(|a| a.dims[axis]).sum();
    let mut data = Vec::new();
    for o in 0..outer {
        for a in args {
            let chunk: usize = a.dims[axis..].iter().product();
            data.extend_from_slice(&a.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Array { dims, data }
}

/// ONNX Slice with `starts`, `ends`, `axes`, `steps` inputs, non-negative starts and positive steps.
fn slice(args: &[&Array]) -> Array {
    let x = args[0];
    let [starts, ends, axes, steps] = [1, 2, 3, 4].map(|k| &args[k].data);
    let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..axes.len() {
        let axis = axes[k] as usize;
        let end = ends[k].min(x.dims[axis] as f64) as usize;
        keep[axis] = (starts[k] as usize..end).step_by(steps[k] as usize).collect();
    }
    let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
    let mut data = Vec::with_capacity(dims.iter().product());
    let mut idx = vec![0; dims.len()];
    for _ in 0..dims.iter().product::<usize>() {
        let src: Vec<usize> = idx.iter().zip(&keep).map(|(&i, k)| k[i]).collect();
        data.push(x.at(&src));
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Array { dims, data }
}

/// Element-wise `f` with numpy broadcasting.
fn broadcast(a: &Array, b: &Array, f: impl Fn(f64, f64) -> f64) -> Array {
    let rank = a.dims.len().max(b.dims.len());
    let pad = |d: &[usize]| [vec![1; rank - d.len()], d.to_vec()].concat();
    let (da, db) = (pad(&a.dims), pad(&b.dims));
    let dims: Vec<usize> = da.iter().zip(&db).map(|(&x, &y)| x.max(y)).collect();
    let mut data = Vec::with_capacity(dims.iter().product());
    let mut idx = vec![0; rank];
    for _ in 0..dims.iter().product::<usize>() {
        let pick =
            |d: &[usize]| idx.iter().zip(d).map(|(&i, &n)| if n == 1 { 0 } else { i }).collect::<Vec<_>>();
        let (ia, ib) = (pick(&da), pick(&db));
        let flat = |i: &[usize], d: &[usize]| i.iter().zip(d).fold(0, |acc, (&i, &n)| acc * n + i);
        data.push(f(a.data[flat(&ia, &da)], b.data[flat(&ib, &db)]));
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Array { dims, data }
}

/// The largest absolute element-wise difference of two arrays of the same shape.
pub(crate) fn max_abs_diff(a: &Array, b: &Array) -> f64 {
    assert_eq!(a.dims, b.dims, "shapes differ");
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// A graph on a `[batch, 3, 8, 8]` input that calls every builder method, with batch norms both after
/// a convolution (foldable) and after an `Add` (not foldable).
pub(crate) fn every_op_graph() -> Graph {
    let mut b =
        GraphBuilder::new("every_op", "input", vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]);
    let x = b.input();
    let pad1 = ConvAttrs { padding: 1, ..ConvAttrs::default() };
    let c1 = b.conv(&x, uniform(8 * 3 * 9, 1, -0.3, 0.3), [8, 3, 3, 3], Some(uniform(8, 2, -0.1, 0.1)), pad1);
    let c1 = b.batch_norm(&c1, bn_params(8, 3));
    let r = b.relu(&c1);
    let dw = b.conv(&r, uniform(8 * 9, 4, -0.3, 0.3), [8, 1, 3, 3], None, ConvAttrs { groups: 8, ..pad1 });
    let dw = b.batch_norm(&dw, bn_params(8, 5));
    let r6 = b.clip(&dw, 0.0, 6.0);
    let ap = b.avg_pool(&r6, 3, 1, 1, false);
    let mp = b.max_pool(&r, 3, 1, 1);
    let z = b.zeros_like(&r);
    let s = b.sum(&[ap, mp, z]);
    let a = b.add(&s, &r);
    let a = b.batch_norm(&a, bn_params(8, 6));
    let cat = b.concat(&[a, r.clone()], 1);
    // DARTS's FactorizedReduce shift on one axis, a stride-2 subsampling on the other.
    let sl = b.slice(&r, &[SliceAxis::from(2, 1), SliceAxis::every(3, 2)]);
    let sl = b.global_avg_pool(&sl);
    let pw = b.conv(
        &cat,
        uniform(8 * 16, 7, -0.3, 0.3),
        [8, 16, 1, 1],
        None,
        ConvAttrs { stride: 2, ..ConvAttrs::default() },
    );
    let g = b.global_avg_pool(&pw);
    let g = b.add(&g, &sl);
    let f = b.flatten(&g);
    let out = b.gemm(&f, uniform(10 * 8, 8, -0.3, 0.3), 10, 8, Some(uniform(10, 9, -0.1, 0.1)));
    b.finish(&out, vec![Dim::Batch, Dim::Fixed(10)])
}

/// The folder holding the `onnx` Python package (with numpy), installed by `cargo xtask setup`.
fn onnx_site() -> PathBuf {
    let deps =
        std::env::var("PWSNAS_DEPS").ok().or_else(|| option_env!("PWSNAS_DEPS").map(String::from)).expect(
            "PWSNAS_DEPS is not set; run the tests through cargo in the workspace after `cargo xtask setup`",
        );
    let site = PathBuf::from(deps).join("onnx-site");
    assert!(
        site.join("onnx").is_dir(),
        "the ONNX checker is not installed at {}: run `cargo xtask setup`",
        site.display()
    );
    site
}

/// Runs `onnx.checker.check_model(full_check=True)`; `Err` holds the checker's complaint.
pub(crate) fn onnx_checker(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, bytes).unwrap();
    let script = "import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)";
    let out = Command::new("python3")
        .env("PYTHONPATH", onnx_site())
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 (needed to run the ONNX checker) could not be started");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
