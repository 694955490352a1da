//! DARTS's second-order α step takes its Hessian-vector term by central differences
//! (`method::darts::hessian_vector`); here it is checked against double backward. In a test binary
//! of its own, so that no other test draws from libtorch's global generator while this one is
//! seeded: run beside the library's tests, the network, the batch and `v` changed from run to run,
//! and at some of those points the central difference was far off (CI failed on one).
use pwsnas::method::alpha::Alphas;
use pwsnas::method::darts::{hessian_vector, loss};
use pwsnas::settings::TrainSettings;
use pwsnas_models::{Mix, Mode, Nb201Params, Space, SpaceKind, Supernet};
use tch::{Kind, Tensor};

fn flat(ts: &[Tensor]) -> Tensor {
    Tensor::cat(&ts.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
}

#[test]
fn the_finite_difference_hessian_vector_product_matches_double_backward() {
    // A tiny nb201 net (3 edges), its α at scale 1, a batch, and the method's training settings.
    let space = Space::full(SpaceKind::new(Nb201Params {
        nodes: 3,
        channels: 2,
        cells_per_stage: 1,
        input_size: 4,
        input_channels: 1,
        classes: 3,
        ..Default::default()
    }));
    tch::manual_seed(7);
    let net = Supernet::new(&space, tch::Device::Cpu);
    let t = space
        .choices
        .iter()
        .map(|cp| {
            Tensor::randn([cp.ops.len() as i64], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)
        })
        .collect();
    let alphas = Alphas { t };
    let x = Tensor::randn([6, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);
    let cfg =
        TrainSettings { weight_decay: 3e-4, momentum: 0.9, nesterov: false, ..TrainSettings::default() };

    let fixed: Vec<Tensor> = alphas.softmax().iter().map(Tensor::detach).collect();
    let params = net.trainable_for_mix(&Mix::weighted(&space, &fixed));
    let tensors: Vec<&Tensor> = params.iter().map(|p| &p.tensor).collect();
    let w: Vec<Tensor> = tensors.iter().map(|t| t.detach().copy()).collect();
    let v: Vec<Tensor> = w.iter().map(Tensor::randn_like).collect();
    // Exact: ∇α of (∇w L · v), by differentiating the weight gradient again.
    let (l, _) = loss(&net, &Mix::weighted(&space, &alphas.softmax()), &x, &y, &cfg, Mode::TRAIN);
    let gw = Tensor::run_backward(&[&l], &tensors, true, true);
    let dot = gw.iter().zip(&v).map(|(g, v)| (g * v).sum(Kind::Float)).fold(Tensor::from(0f32), |a, b| a + b);
    let refs: Vec<&Tensor> = alphas.t.iter().collect();
    let exact = flat(&Tensor::run_backward(&[&dot], &refs, false, false));
    let fd = flat(&hessian_vector(&net, &space, &alphas, &params, &w, &v, (&x, &y), &cfg));
    let err = (&fd - &exact).norm().double_value(&[]) / exact.norm().double_value(&[]);
    assert!(exact.norm().double_value(&[]) > 1e-4, "a non-trivial product");
    assert!(err < 0.05, "relative error {err}: {fd} vs {exact}");
    // The weights are back where they were.
    for (t, w) in tensors.iter().zip(&w) {
        assert!(t.equal(w));
    }
}
