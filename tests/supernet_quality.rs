//! After a short supernet training, children evaluated with the shared weights (BN recalibration +
//! validation top-1) rank clearly above chance.
use pwsnas::data::RunData;
use pwsnas::eval::Evaluator;
use pwsnas::progress::Progress;
use pwsnas::run::RunDir;
use pwsnas::settings::Settings;
use pwsnas::supernet::SupernetRun;
use pwsnas::train::epoch::Phase;
use rand::SeedableRng;
use tch::Device;

#[test]
fn shared_weight_accuracy_is_well_above_chance_after_short_training() {
    let mut s = Settings {
        data: "synthetic:classes=4,channels=1,size=8,train=800,test=100".into(),
        ..Settings::default()
    };
    s.space_params.insert("channels".into(), 8.into());
    s.space_params.insert("cells_per_stage".into(), 1.into());
    s.supernet.epochs = 6;
    s.supernet.batch_size = 32;
    s.supernet.lr = 0.1;
    let data = RunData::load(&s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open_or_create(dir.path(), &s, "cpu", false).unwrap();
    let mut sn = SupernetRun::open(&run, &data, Device::Cpu).unwrap();
    let evaluator = Evaluator::new(&data, 4, 32, 200, 0, Device::Cpu);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // Children with at least one path of weights (an all-`none` cell cannot learn anything).
    let children: Vec<_> = (0..40)
        .map(|_| sn.space.sample(&mut rng))
        .filter(|a| !sn.net.segments(a, pwsnas_models::Composition::Ops).is_empty())
        .take(10)
        .collect();
    let mean = |sn: &SupernetRun| {
        children.iter().map(|a| evaluator.accuracy(&sn.net, a)).sum::<f64>() / children.len() as f64
    };
    let before = mean(&sn);
    sn.train_to(6, Phase { start: 0, end: 6 }, &s, &data, &Progress::silent()).unwrap();
    let after = mean(&sn);
    assert!(after > 0.5, "mean shared-weight accuracy {after:.3} (chance 0.25, before training {before:.3})");
    assert!(after > before + 0.15, "training should help: {before:.3} → {after:.3}");
}
