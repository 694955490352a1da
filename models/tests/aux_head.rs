//! DARTS's auxiliary head on the darts network: in training the network hands out the output of
//! its second reduction cell, of the shape its space declares, and the head classifies it; the
//! logits are those of the plain forward; spaces without a head (nb201) declare none.
use pwsnas_models::net::aux_head::AuxHead;
use pwsnas_models::{DartsParams, Mode, Nb201Params, Space, SpaceKind, Supernet};
use tch::{Device, Kind, Tensor};

#[test]
fn the_darts_network_feeds_the_head_the_second_reduction_cells_output_in_training_only() {
    let params = DartsParams {
        channels: 2,
        layers: 5,
        classes: 3,
        input_channels: 1,
        input_size: 16,
        ..Default::default()
    };
    let kind = SpaceKind::new(params);
    let shape = kind.aux_shape().expect("darts offers an auxiliary head");
    // Cell 2·5/3 = 3 is the second reduction cell: 4 nodes × 4C channels, 16 / 4 pixels.
    assert_eq!((shape.channels, shape.size, shape.classes), (4 * 4 * 2, 4, 3));
    let arch = kind.parse_arch("DARTS_V2").unwrap();
    let net = Supernet::standalone(&kind, &arch, Device::Cpu);
    let x = Tensor::randn([2, 1, 16, 16], (Kind::Float, Device::Cpu));
    let (logits, features) = net.forward_with_aux(&x, &arch, Mode::EVAL);
    assert!(features.is_none(), "no features outside training");
    assert!(logits.equal(&net.forward(&x, &arch, Mode::EVAL)));
    let (_, features) = net.forward_with_aux(&x, &arch, Mode::TRAIN);
    let features = features.expect("features in training");
    assert_eq!(features.size(), [2, shape.channels as i64, 4, 4]);
    let head = AuxHead::new(shape, Device::Cpu).unwrap();
    assert_eq!(head.forward(&features, Mode::TRAIN).size(), [2, 3]);
    // The head's variables are its own: the child's count and names do not change.
    assert!(net.named_tensors().iter().all(|(n, _)| !n.starts_with("aux")));

    let nb201 =
        SpaceKind::new(Nb201Params { channels: 4, cells_per_stage: 1, input_size: 8, ..Default::default() });
    assert!(nb201.aux_shape().is_none());
    let net = Supernet::new(&Space::full(nb201.clone()), Device::Cpu);
    let child = Space::full(nb201).enumerate()[3].clone();
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert!(net.forward_with_aux(&x, &child, Mode::TRAIN).1.is_none());
}
