//! Test support: a naive reference evaluator of the ONNX operators whose numerics the tests check, a
//! deterministic pseudo-random source, and a graph that uses every builder method.
//!
//! The evaluator runs on the decoded [`ModelProto`], not on the IR, so it checks the ONNX encoding
//! (attribute names, weight layout, broadcast shapes) as well as the passes. It computes in `f64` and is
//! written for clarity, not speed.

use std::collections::HashMap;

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

/// Evaluates a model with one input and one output. Supports Conv, BatchNormalization, Relu, Add and
/// Mul (with broadcasting), Concat and Slice; panics on anything else.
pub(crate) fn run(model: &ModelProto, input: &Array) -> Array {
    let graph = model.graph.as_ref().expect("model has a graph");
    let mut env: HashMap<&str, Array> = HashMap::new();
    for t in &graph.initializer {
        let data: Vec<f64> = if t.data_type() == DataType::Int64 as i32 {
            t.raw_data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
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
        let args: Vec<&Array> = node.input.iter().map(|i| &env[i.as_str()]).collect();
        let out = match node.op_type() {
            "Conv" => conv(node, &args),
            "BatchNormalization" => batch_norm(&args, attr(node, "epsilon").f().into()),
            "Relu" => {
                Array { dims: args[0].dims.clone(), data: args[0].data.iter().map(|v| v.max(0.0)).collect() }
            }
            "Add" => broadcast(args[0], args[1], |a, b| a + b),
            "Mul" => broadcast(args[0], args[1], |a, b| a * b),
            "Concat" => concat(&args, attr(node, "axis").i() as usize),
            "Slice" => slice(&args),
            other => panic!("reference evaluator has no {other}"),
        };
        env.insert(node.output[0].as_str(), out);
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
