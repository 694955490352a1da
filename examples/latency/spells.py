# Are a machine's slower and faster spells one common slow-down? Alternates half-second windows of a
# model and of a fixed reference model (4 convs 3x3, 16 channels, on the model's input) for 40 s,
# each window in a fresh ONNX Runtime session, and prints the windows' medians and their ratio
# (docs/latency.md, "One protocol for every ONNX Runtime latency").
#
#   PYTHONPATH=$PWSNAS_HOME/deps/onnxruntime-1.31.1:$PWSNAS_HOME/deps/onnx-1.20.0 \
#     python3 examples/latency/spells.py runs/demo/model.onnx [THREADS]
import sys, time, statistics
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto, numpy_helper
model = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
dims = [d.dim_value or 1 for d in onnx.load(model).graph.input[0].type.tensor_type.shape.dim]
rng = np.random.RandomState(0)
nodes, inits, prev, c = [], [], "x", dims[1]
for i in range(4):
    w = numpy_helper.from_array(rng.randn(16, c, 3, 3).astype(np.float32) * 0.1, f"w{i}")
    inits.append(w)
    nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
    prev, c = f"r{i}", 16
g = helper.make_graph(nodes, "ref", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1] + dims[1:])],
                      [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)], inits)
ref = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
x = rng.randn(1, *dims[1:]).astype(np.float32)
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads
def window(src):
    s = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    n = s.get_inputs()[0].name
    for _ in range(20): s.run(None, {n: x})
    ts, t0 = [], time.time()
    while time.time() - t0 < 0.5:
        a = time.perf_counter(); s.run(None, {n: x}); ts.append((time.perf_counter() - a) * 1000)
    return statistics.median(ts)
rows = []
t_end = time.time() + 40
while time.time() < t_end:
    rows.append((window(model), window(ref)))
d = [r[0] for r in rows]; r = [r[1] for r in rows]; q = [a / b for a, b in rows]
cv = lambda v: statistics.pstdev(v) / statistics.mean(v)
print(f"threads {threads}: model {min(d):.3f}-{max(d):.3f} ms (cv {cv(d):.1%}); reference {min(r):.3f}-{max(r):.3f} ms (cv {cv(r):.1%}); ratio {min(q):.3f}-{max(q):.3f} (cv {cv(q):.1%})")
print("windows model/ref:", " ".join(f"{a:.3f}/{b:.3f}" for a, b in rows))
