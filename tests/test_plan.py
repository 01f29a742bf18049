"""Planning rules: every combination becomes a job; impossible ones are skipped with their reason."""
import pytest

from farm.errors import FarmError
from farm.inventory import parse_device
from farm.plan import PlannedVariant, SweepSpec, load_spec, parse_spec, plan_jobs, select_devices, skip_reason

PI = parse_device(dict(name="pi", kind="linux", host="h", delegates=["xnnpack", "none"], tags=["arm"]))
CORAL = parse_device(dict(name="coral", kind="linux", host="h", delegates=["xnnpack", "edgetpu"], tags=["arm"]))
PHONE = parse_device(dict(name="phone", kind="android", serial="s", delegates=["xnnpack", "gpu", "hexagon"], flex=True,
                          binaries={"arm64-v8a": "bm"}, flex_binaries={"arm64-v8a": "bm_plus_flex"}))
FP32 = PlannedVariant(1, "m", "fp32")
INT8 = PlannedVariant(2, "m", "int8")
EDGETPU = PlannedVariant(3, "m", "edgetpu")
FLEX = PlannedVariant(4, "m", "fp32", needs_flex=True)
BROKEN = PlannedVariant(5, "m", "int16x8", error="allocate_tensors failed: boom")


def spec(**overrides) -> SweepSpec:
    return SweepSpec.model_validate({"models": [{"source": "m.keras"}], **overrides})


def test_product_of_all_axes():
    jobs = plan_jobs(spec(delegates=["xnnpack", "none"], threads=[1, 2, 4], repeats=2), [PI], [FP32, INT8])
    assert len(jobs) == 2 * 2 * 3 * 2
    assert all(job["state"] == "pending" and job["error"] is None for job in jobs)
    assert len({(j["variant_id"], j["delegate"], j["threads"], j["repeat"]) for j in jobs}) == len(jobs)


def test_three_repeats_by_default_interleaved_across_configurations():
    jobs = plan_jobs(spec(delegates=["xnnpack", "none"]), [PI], [FP32, INT8])
    order = [(j["repeat"], j["variant_id"], j["delegate"]) for j in jobs]
    # A B C D A B C D A B C D: each repeat runs every configuration before the next repeat starts.
    assert order == [(r, v, d) for r in range(3) for v in (1, 2) for d in ("xnnpack", "none")]


@pytest.mark.parametrize(
    "device, variant, delegate, reason",
    [
        (PI, FP32, "gpu", "device 'pi' does not offer the gpu delegate"),
        (PHONE, FP32, "hexagon", "the hexagon delegate runs only full-int8 models; fp32 is not"),
        (CORAL, INT8, "edgetpu", "needs an _edgetpu.tflite variant"),
        (CORAL, EDGETPU, "xnnpack", "an Edge TPU model runs only on the edgetpu delegate"),
        (PI, FLEX, "xnnpack", "needs Flex (SELECT_TF_OPS) ops; device 'pi' has no Flex runtime"),
        (PI, BROKEN, "xnnpack", "variant int16x8 of m is unusable: allocate_tensors failed: boom"),
    ],
)
def test_impossible_combinations_are_skipped_with_reason(device, variant, delegate, reason):
    assert reason in skip_reason(device, variant, delegate)
    (job,) = plan_jobs(spec(delegates=[delegate], repeats=1), [device], [variant])
    assert job["state"] == "skipped" and reason in job["error"]


@pytest.mark.parametrize(
    "device, variant, delegate",
    [(PHONE, INT8, "hexagon"), (CORAL, EDGETPU, "edgetpu"), (PHONE, FLEX, "xnnpack"), (PHONE, INT8, "gpu")],
)
def test_possible_combinations_are_pending(device, variant, delegate):
    assert skip_reason(device, variant, delegate) is None


def test_select_devices_by_name_tag_and_all():
    devices = [PI, CORAL, PHONE]
    assert select_devices(spec(), devices, "s") == devices
    assert select_devices(spec(devices=["tag:arm"]), devices, "s") == [PI, CORAL]
    assert select_devices(spec(devices=["phone", "pi", "phone"]), devices, "s") == [PHONE, PI]
    with pytest.raises(FarmError, match=r"s: devices: unknown device 'rpi9' \(inventory has: pi, coral, phone\)"):
        select_devices(spec(devices=["rpi9"]), devices, "s")
    with pytest.raises(FarmError, match="no device has tag 'gpu'"):
        select_devices(spec(devices=["tag:gpu"]), devices, "s")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"models": [{"source": "m.keras", "variants": ["fp33"]}]},
         "sweep.yaml: model 'm.keras': variants: unknown variant 'fp33' (known: fp32, fp16, dynamic, int8, int16x8, edgetpu, qat, pruned, pruned-int8, onnx)"),
        ({"models": [{"source": "m.keras"}], "delegates": ["gpuu"]}, "sweep.yaml: delegates: unknown delegate 'gpuu'"),
        ({"models": [{"source": "m.keras"}], "threads": [0]}, "sweep.yaml: threads: threads must be positive"),
        ({"models": []}, "sweep.yaml: models: "),
        ({"models": [{"source": "m.keras"}], "runz": 3}, "sweep.yaml: runz: unknown field"),
        ({"name": "a/b", "models": [{"source": "m.keras"}]}, "sweep.yaml: name: invalid name 'a/b'"),
        ({"name": "", "models": [{"source": "m.keras"}]}, "sweep.yaml: name: invalid name ''"),
    ],
)
def test_spec_mistakes(raw, message):
    with pytest.raises(FarmError) as error:
        parse_spec(raw, "sweep.yaml")
    assert str(error.value).startswith(message)


def test_spec_paths_resolve_against_the_spec_file(tmp_path):
    (tmp_path / "sweeps").mkdir()
    path = tmp_path / "sweeps" / "s.yaml"
    path.write_text("name: s\ninventory: ../inv.yaml\nmodels:\n  - source: ../models/m.keras\n    eval: e.npz\n")
    loaded = load_spec(path)
    assert loaded.inventory == [str(tmp_path / "inv.yaml")]
    assert loaded.models[0].source == str(tmp_path / "models" / "m.keras")
    assert loaded.models[0].eval == str(tmp_path / "sweeps" / "e.npz")
    assert loaded.models[0].name == "m"


def test_the_demo_spec_as_the_demo_writes_it_loads(tmp_path):
    import yaml

    from farm.demo import demo_spec
    from farm.plan import load_spec

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(demo_spec(tmp_path, runs=50), sort_keys=False))
    spec = load_spec(path)
    assert [m.name for m in spec.models] == ["digits", "mobilenet_v2"] and spec.devices == ["local"]
