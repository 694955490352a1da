//! Shape inference on the IR: the shape of every value, from the input shape, the parameters and the
//! operators' attributes. The rewrites need it to know when two values can stand for each other (a
//! zero term dropped from a sum must not have changed the sum's shape).
//!
//! An operator this module does not know gives its output no shape; rewrites leave such values alone.
use std::collections::HashMap;

use crate::ir::{Dim, Graph, Op};

/// The shape of a value: the batch dimension is [`Dim::Batch`], every other one fixed.
pub(crate) type Shape = Vec<Dim>;

impl Graph {
    /// The shape of every value whose shape follows from the graph input's (parameters included).
    pub(crate) fn shapes(&self) -> HashMap<String, Shape> {
        let mut shapes: HashMap<String, Shape> = HashMap::new();
        for (name, t) in &self.initializers {
            shapes.insert(name.clone(), t.dims.iter().map(|&d| Dim::Fixed(d)).collect());
        }
        shapes.insert(self.input.name.clone(), self.input.shape.clone());
        // `Shape(x)` outputs, by the shape they hold (for ConstantOfShape).
        let mut held: HashMap<String, Shape> = HashMap::new();
        for node in &self.nodes {
            let arg = |i: usize| node.inputs.get(i).and_then(|n| shapes.get(n));
            let out = match &node.op {
                Op::Conv { kernel, attrs } => match (arg(0), arg(1)) {
                    (Some(x), Some(w)) if x.len() == 4 => {
                        let size = |d: Dim| {
                            spatial(d, |h| {
                                (h + 2 * attrs.padding)
                                    .checked_sub(attrs.dilation * (kernel - 1) + 1)
                                    .map(|v| v / attrs.stride + 1)
                            })
                        };
                        Some(vec![x[0], w[0], size(x[2]), size(x[3])])
                    }
                    _ => None,
                },
                Op::AveragePool { kernel, stride, padding, .. } | Op::MaxPool { kernel, stride, padding } => {
                    arg(0).filter(|x| x.len() == 4).map(|x| {
                        let size = |d: Dim| {
                            spatial(d, |h| (h + 2 * padding).checked_sub(*kernel).map(|v| v / stride + 1))
                        };
                        vec![x[0], x[1], size(x[2]), size(x[3])]
                    })
                }
                Op::BatchNormalization { .. } | Op::Relu | Op::Clip => arg(0).cloned(),
                Op::Add | Op::Mul | Op::Sum => {
                    let args: Option<Vec<&Shape>> = (0..node.inputs.len()).map(arg).collect();
                    args.and_then(|a| a.into_iter().try_fold(Vec::new(), |acc, s| broadcast(&acc, s)))
                }
                Op::Concat { axis } => {
                    concat(&node.inputs.iter().map(|n| shapes.get(n)).collect::<Vec<_>>(), *axis)
                }
                Op::Shape => arg(0).map(|x| {
                    held.insert(node.output.clone(), x.clone());
                    vec![Dim::Fixed(x.len())]
                }),
                Op::ConstantOfShape => node.inputs.first().and_then(|n| held.get(n)).cloned(),
                Op::GlobalAveragePool => {
                    arg(0).filter(|x| x.len() == 4).map(|x| vec![x[0], x[1], Dim::Fixed(1), Dim::Fixed(1)])
                }
                Op::Flatten => arg(0).and_then(|x| {
                    let rest = x[1..].iter().try_fold(1, |acc, d| match d {
                        Dim::Fixed(n) => Some(acc * n),
                        Dim::Batch => None,
                    })?;
                    Some(vec![x[0], Dim::Fixed(rest)])
                }),
                Op::Gemm => match (arg(0), arg(1)) {
                    (Some(x), Some(w)) if x.len() == 2 && w.len() == 2 => Some(vec![x[0], w[0]]),
                    _ => None,
                },
                Op::Slice { axes } => arg(0).and_then(|x| {
                    let mut out = x.clone();
                    for a in axes {
                        let Dim::Fixed(n) = *out.get(a.axis)? else { return None };
                        let (n, start, step) = (n as i64, a.start, a.step);
                        let end = a.end.unwrap_or(n).min(n);
                        if start < 0 || step <= 0 {
                            return None;
                        }
                        out[a.axis] = Dim::Fixed(((end - start).max(0) + step - 1) as usize / step as usize);
                    }
                    Some(out)
                }),
                Op::Split { .. } => None,
            };
            if let (Op::Split { axis, others }, Some(x)) = (&node.op, arg(0)) {
                let parts = 1 + others.len();
                let axis = if *axis < 0 { axis + x.len() as i64 } else { *axis } as usize;
                if let Some(Dim::Fixed(n)) =
                    x.get(axis).copied().filter(|d| matches!(d, Dim::Fixed(n) if n % parts == 0))
                {
                    let mut part = x.clone();
                    part[axis] = Dim::Fixed(n / parts);
                    for name in node.outputs() {
                        shapes.insert(name.clone(), part.clone());
                    }
                }
                continue;
            }
            if let Some(out) = out {
                shapes.insert(node.output.clone(), out);
            }
        }
        shapes
    }
}

/// A spatial output size from a fixed input size (`None` when the window does not fit).
fn spatial(d: Dim, f: impl Fn(usize) -> Option<usize>) -> Dim {
    match d {
        Dim::Fixed(h) => Dim::Fixed(f(h).unwrap_or(0)),
        Dim::Batch => Dim::Batch,
    }
}

/// Numpy broadcasting of two shapes (`None` when they do not broadcast); `[]` is the neutral shape.
pub(crate) fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { Dim::Fixed(1) };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (Dim::Fixed(1), y) => Some(y),
            (x, Dim::Fixed(1)) => Some(x),
            _ => None,
        })
        .collect()
}

fn concat(shapes: &[Option<&Shape>], axis: i64) -> Option<Shape> {
    let first = (*shapes.first()?)?;
    let axis = if axis < 0 { axis + first.len() as i64 } else { axis } as usize;
    let mut out = first.clone();
    let mut total = 0;
    for s in shapes {
        let s = (*s)?;
        match s.get(axis)? {
            Dim::Fixed(n) => total += n,
            Dim::Batch => return None,
        }
    }
    *out.get_mut(axis)? = Dim::Fixed(total);
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::ir::Dim::{Batch, Fixed};
    use crate::testkit::every_op_graph;

    #[test]
    fn every_value_of_every_op_has_its_shape() {
        let g = every_op_graph();
        let shapes = g.shapes();
        for node in &g.nodes {
            assert!(shapes.contains_key(&node.output), "{} has no shape", node.output);
        }
        assert_eq!(shapes["conv_0"], [Batch, Fixed(8), Fixed(8), Fixed(8)]);
        assert_eq!(shapes["zeros_0"], [Batch, Fixed(8), Fixed(8), Fixed(8)]);
        assert_eq!(shapes["zeros_0.shape"], [Fixed(4)]);
        assert_eq!(shapes["concat_0"], [Batch, Fixed(16), Fixed(8), Fixed(8)]);
        // The stride-2 1×1 conv halves the size.
        assert_eq!(shapes["conv_2"], [Batch, Fixed(8), Fixed(4), Fixed(4)]);
        assert_eq!(shapes["flatten_0"], [Batch, Fixed(8)]);
        assert_eq!(shapes[g.output_name()], [Batch, Fixed(10)]);
    }

    #[test]
    fn slices_keep_their_range() {
        use crate::ir::SliceAxis;
        use crate::GraphBuilder;
        let mut b = GraphBuilder::new("g", "x", vec![Batch, Fixed(4), Fixed(7), Fixed(7)]);
        let x = b.input();
        let y = b.slice(&x, &[SliceAxis::from(2, 1), SliceAxis::every(3, 2)]);
        let g = b.finish(&y, vec![Batch, Fixed(4), Fixed(6), Fixed(4)]);
        assert_eq!(g.shapes()[y.name()], [Batch, Fixed(4), Fixed(6), Fixed(4)]);
    }

    #[test]
    fn broadcasting() {
        use super::broadcast;
        let x = [Batch, Fixed(3), Fixed(4), Fixed(4)];
        assert_eq!(broadcast(&x, &[Fixed(1), Fixed(3), Fixed(1), Fixed(1)]).unwrap(), x);
        assert_eq!(broadcast(&[], &x).unwrap(), x);
        assert_eq!(broadcast(&[Fixed(4)], &x).unwrap(), x);
        assert!(broadcast(&x, &[Fixed(2), Fixed(1), Fixed(1)]).is_none());
    }
}
