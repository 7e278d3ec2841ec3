"""edgecount convert: formats equal to PyTorch within tolerance, INT8 close, pruning real, bad input refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")

from edgecount.convert.calibration import head_windows  # noqa: E402
from edgecount.convert.formats import check_onnx, write_onnx, write_openvino  # noqa: E402
from edgecount.convert.prune import count_parameters, prune  # noqa: E402
from edgecount.convert.run import NOISE_VARIANT  # noqa: E402
from edgecount.convert.verify import RuntimePipeline, TorchPipeline, compare, run_pipeline  # noqa: E402
from edgecount.errors import EdgecountError  # noqa: E402
from edgecount.model.default import build_default  # noqa: E402
from edgecount.runtime.model import RepetitionModel  # noqa: E402
from tests.cli_run import assert_one_line_error, run  # noqa: E402
from tests.videos import moving_square, write_video  # noqa: E402

FEATURE_ATOL = 1e-5  # unit-length embeddings, ONNX Runtime / OpenVINO f32 against torch
LOGIT_ATOL = 1e-3  # period logits and periodicity logits
COUNT_ATOL = 1e-3  # the count of a clip
# INT8 features (window-centred cosine to fp32 torch) on clips the calibration did not see,
# measured (untrained projection): ONNX Runtime 0.9937 mean / 0.9915 worst, NNCF 0.9941 / 0.9912
# (with NNCF's default per-channel activation ranges: 0.9851 / 0.9780).
INT8_COS_MEAN = 0.99
INT8_COS_MIN = 0.985


def clip(n: int, period: float, seed: int) -> np.ndarray:
    """RGB 112x112 frames of a square moving with ``period`` over a random texture."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = moving_square(n, period, (112, 112))
    frames = (frames.astype(np.int16) + rng.integers(-40, 40, (1, 1, 1, 3))).clip(0, 255).astype(np.uint8)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    return build_default(pretrained=True).eval()


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [clip(72, 9, 0), clip(64, 14, 1)]


PERIODS = np.arange(32) + 1  # period in frames of each class of the default model


def outputs(pipeline, clips):
    return run_pipeline(pipeline, clips, 64, PERIODS)


@pytest.fixture(scope="module")
def reference(model, clips):
    return outputs(TorchPipeline(model), clips)


@pytest.fixture(scope="module")
def onnx_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    write_onnx(model, folder, "test")
    return folder


@pytest.fixture(scope="module")
def openvino_dir(onnx_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("openvino")
    write_openvino(onnx_dir, folder)
    return folder


def calibration(model, clips) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate(clips), head_windows([TorchPipeline(model).encode(c) for c in clips], 64, 4)


def test_onnx_single_checked_file_equal_to_torch(onnx_dir, clips, reference):
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["encoder.onnx", "head.onnx", "manifest.json"]
    for name in ("encoder.onnx", "head.onnx"):
        check_onnx(onnx_dir / name)  # onnx.checker, no external data
    out = outputs(RuntimePipeline(onnx_dir, threads=1), clips)
    assert np.abs(np.concatenate(out.features) - np.concatenate(reference.features)).max() < FEATURE_ATOL
    agreement = compare(reference, out)
    assert agreement.period_logits_max_diff < LOGIT_ATOL
    assert agreement.periodicity_max_diff < LOGIT_ATOL
    assert agreement.count_max_diff < COUNT_ATOL


def test_onnx_head_has_dynamic_batch(onnx_dir, reference):
    head = RuntimePipeline(onnx_dir, threads=1)
    windows = np.repeat(reference.features[0][None, :64], 3, axis=0)
    period, periodicity = head.head(windows)
    assert period.shape == (3, 64, 32) and periodicity.shape == (3, 64)


def test_openvino_f32_equal_to_torch(openvino_dir, clips, reference):
    manifest = json.loads((openvino_dir / "manifest.json").read_text())
    assert manifest["format"] == "openvino" and manifest["extra"]["inference_precision"] == "f32"
    out = outputs(RuntimePipeline(openvino_dir, threads=1), clips)
    assert np.abs(np.concatenate(out.features) - np.concatenate(reference.features)).max() < FEATURE_ATOL * 10
    agreement = compare(reference, out)
    assert agreement.period_logits_max_diff < LOGIT_ATOL
    assert agreement.periodicity_max_diff < LOGIT_ATOL
    assert agreement.count_max_diff < COUNT_ATOL


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_keeps_features(fmt, model, clips, onnx_dir, openvino_dir, tmp_path):
    from edgecount.convert.quantize import quantize_onnx, quantize_openvino

    frames, windows = calibration(model, clips[:1])
    held_out = clips[1:] + [clip(64, 6, 2)]
    if fmt == "onnx":
        manifest = quantize_onnx(onnx_dir, tmp_path, frames, windows)
    else:
        manifest = quantize_openvino(openvino_dir, tmp_path, frames[::2], windows)
    assert manifest.precision == "int8"
    kept = manifest.extra["kept_higher_precision"]
    assert any("_conv_stem" in name for name in kept["encoder"]), kept["encoder"]  # the first conv stays float
    assert any("ReduceL2" in name for name in kept["encoder"]), kept["encoder"]  # so does the L2 normalisation
    assert any("Softmax" in name for name in kept["head"]), kept["head"]  # the TSM softmax stays float
    agreement = compare(outputs(TorchPipeline(model), held_out), outputs(RuntimePipeline(tmp_path, threads=1), held_out))
    assert agreement.feature_cos_mean >= INT8_COS_MEAN, agreement
    assert agreement.feature_cos_min >= INT8_COS_MIN, agreement


def test_pruning_removes_channels(model, clips):
    pruned = prune(model, 0.5, torch.from_numpy(clips[0][:4]))
    assert count_parameters(pruned) < 0.8 * count_parameters(model)
    block = pruned.encoder.trunk.net._blocks[4]
    assert block._expand_conv.out_channels < model.encoder.trunk.net._blocks[4]._expand_conv.out_channels
    frames = torch.randint(0, 256, (3, 112, 112, 3), dtype=torch.uint8)
    with torch.no_grad():
        feats = pruned.encode(frames)
        assert feats.shape == model.encode(frames).shape
        period, periodicity = pruned.window_head(feats[None].repeat(1, 22, 1)[:, :64])
    assert period.shape == (1, 64, 32) and periodicity.shape == (1, 64)


@pytest.mark.slow
def test_pruning_faithful_temporal_conv(clips):
    from edgecount.model.faithful import build_faithful

    torch.manual_seed(0)
    model = build_faithful(32).eval()
    frames = torch.from_numpy(clips[0][::8][:8])
    pruned = prune(model, 0.5, frames)
    project, conv = pruned.temporal_conv[0]
    assert (project.in_channels, project.out_channels, conv.out_channels) == (1024, 512, 256)
    assert pruned.temporal_conv[1].num_features == 256
    assert pruned.encoder.stages[0].blocks[0].conv1.out_channels == 32
    # the residual streams of the first two stages are pruned too; the last one is the encoder's output
    assert pruned.encoder.stem.conv.out_channels == 32
    assert [pruned.encoder.stages[i].blocks[0].downsample.conv.out_channels for i in range(3)] == [128, 256, 1024]
    assert count_parameters(pruned) < 0.6 * count_parameters(model)
    with torch.no_grad():
        features = pruned.encode(frames)
        assert features.shape == model.encode(frames).shape
        assert pruned.embed(features[None]).shape == (1, 8, 256)


def test_factorized_temporal_conv_is_exact_at_full_rank():
    from edgecount.convert.prune import factorize_input

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(16, 8, 3, padding=(3, 1, 1), dilation=(3, 1, 1))
    features = torch.randn(2, 16, 6, 5, 5)
    with torch.no_grad():
        assert torch.allclose(factorize_input(conv, features, 16)(features), conv(features), atol=1e-4)
        low = torch.randn(2, 4, 6, 5, 5)  # features in a 4-d subspace: rank 4 is exact too
        features = torch.einsum("bc...,cd->bd...", low, torch.randn(4, 16))
        assert torch.allclose(factorize_input(conv, features, 4)(features), conv(features), atol=1e-3)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    write_video(folder / "square.mp4", moving_square(72, 9))
    return folder


@pytest.mark.parametrize("args, words", [
    (["--format", "tflite"], ["unknown format", "tflite"]),
    (["--precision", "int4"], ["unknown precision", "int4"]),
    (["--precision", "bf16"], ["needs --format openvino"]),
    (["--model", "resnet"], ["unknown model"]),
    (["--prune", "0"], ["prune ratio", "outside"]),
    (["--prune", "0.95"], ["prune ratio", "outside"]),
    (["--prune", "-0.2"], ["prune ratio", "outside"]),
])
def test_bad_arguments(capsys, tmp_path, args, words):
    code, _, err = run(capsys, "convert", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "out").exists()


def test_existing_output_refused_without_force(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    code, _, err = run(capsys, "convert", "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "exists", "--force")


def test_empty_calibration_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    code, _, err = run(capsys, "convert", "--calibration", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "has no videos")


def test_missing_calibration_folder(capsys, tmp_path):
    code, _, err = run(capsys, "convert", "--calibration", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "does not exist")


@pytest.mark.parametrize("model", ["default", "repnet"])
@pytest.mark.parametrize("content", ["garbage", "other-state-dict", "missing"])
def test_bad_weights(capsys, tmp_path, calibration_dir, model, content):
    weights = tmp_path / "weights.pt"
    if content == "garbage":
        weights.write_bytes(b"\x00not a checkpoint" * 100)
    elif content == "other-state-dict":
        torch.save({"fc.weight": torch.zeros(3, 3)}, weights)
    code, _, err = run(capsys, "convert", "--model", model, "--weights", str(weights),
                       "--calibration", str(calibration_dir), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "weights.pt")
    assert not (tmp_path / "out").exists()


def test_manifest_check_refuses_mismatched_directory(capsys, onnx_dir, tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square(40, 8))
    folder = tmp_path / "model"
    shutil.copytree(onnx_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for change, words in [({"format": "openvino"}, ["encoder.xml is missing"]),
                          ({"precision": "int4"}, ["unknown precision"]),
                          ({"version": "9.0.0"}, ["made by edgecount 9.0.0"])]:
        (folder / "manifest.json").write_text(json.dumps(manifest | change))
        with pytest.raises(EdgecountError):
            RepetitionModel(folder)
        code, _, err = run(capsys, "count", str(video), "--model", str(folder))
        assert_one_line_error(code, err, *words)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, precision, prune_args", [
    ("onnx", "fp32", []), ("openvino", "int8", []), ("onnx", "int8", ["--prune", "0.3"]),
])
def test_convert_then_count(capsys, tmp_path, calibration_dir, fmt, precision, prune_args):
    out = tmp_path / "model"
    code, report, err = run(capsys, "convert", "--format", fmt, "--precision", precision, *prune_args,
                            "--calibration", str(calibration_dir), "--out", str(out), "--threads", "2",
                            "--finetune-seconds", "10")
    assert code == 0, err
    assert "pytorch fp32" in report and f"{fmt} {precision}" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == fmt and manifest["precision"] == precision
    assert manifest["extra"]["verification"][-1]["agreement"]["period_argmax_agree"] > 0.9
    noise = manifest["extra"]["verification"][1]  # the original on noisy frames, for scale
    assert noise["variant"] == NOISE_VARIANT and 0 < noise["agreement"]["feature_cos_mean"] < 1
    video = write_video(tmp_path / "v.mp4", moving_square(90, 10))
    code, counted, err = run(capsys, "count", str(video), "--model", str(out), "--json")
    assert code == 0, err
    assert json.loads(counted)["frames"] == 90
    code, _, err = run(capsys, "convert", "--format", fmt, "--out", str(out))
    assert_one_line_error(code, err, "exists")


def test_count_with_converted_model_imports_no_torch(onnx_dir, tmp_path):
    import subprocess
    import sys

    video = write_video(tmp_path / "v.mp4", moving_square(40, 8))
    code = ("import sys; from edgecount.cli import main; "
            f"rc = main(['count', {str(video)!r}, '--model', {str(onnx_dir)!r}, '--quiet', '--threads', '1']); "
            "heavy = [m for m in ('torch', 'openvino', 'nncf', 'torch_pruning') if m in sys.modules]; "
            "assert rc == 0 and not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("moved, warned", [(0.2, False), (2.0, True)])
def test_report_warns_when_counts_move(tmp_path, moved, warned):
    from edgecount.convert.report import Row
    from edgecount.convert.run import Result
    from edgecount.convert.verify import Agreement
    from edgecount.runtime.manifest import Manifest

    manifest = Manifest("m", "onnx", "int8", 112, 64, 32, 1, [256], "0", {"source": "default", "weights": "w"})
    agreement = Agreement(0.1, 0.1, 0.9, 1.0, 0.99, 0.95, moved)
    noise = Agreement(0.2, 0.2, 0.8, 1.0, 0.98, 0.9, 1.25)
    rows = [Row("pytorch fp32", 1, 1, 0.2), Row(NOISE_VARIANT, 1, 1, 0.2, noise), Row("onnx int8", 1, 1, 0.1, agreement)]
    report = Result(manifest, rows).report(tmp_path)
    assert ("warning: the count of a calibration clip moved by" in report) == warned
    assert ("the original's own count moved by 1.25 with the noise" in report) == warned


def test_run_starts_stay_inside_each_clip():
    from edgecount.convert.distill import run_starts

    assert run_starts([10, 3, 9], 8).tolist() == [0, 1, 2, 13, 14]


@pytest.mark.slow
def test_recovery_brings_frame_changes_back(model, clips):
    from edgecount.convert.distill import distill
    from edgecount.convert.verify import centred_cosines

    student = prune(model, 0.3, torch.from_numpy(clips[0][:4]))
    held_out = torch.from_numpy(clip(64, 6, 2))

    def cosine() -> float:
        with torch.no_grad():
            return float(np.mean(centred_cosines(model.encode(held_out).numpy(), student.encode(held_out).numpy(), 64)))

    before = cosine()
    distill(student, model, clips, seconds=600, max_steps=15)  # a fixed amount of work, not of time
    after = cosine()
    assert after > before + 0.3, (before, after)  # measured 0.26 -> 0.74


def test_verification_frames_are_held_out_of_calibration():
    from edgecount.convert.calibration import hold_out

    three = [np.full((9, 1), i) for i in range(4)]
    calibrate, verify = hold_out(three)
    assert [int(c[0, 0]) for c in calibrate] == [0, 1, 3] and [int(c[0, 0]) for c in verify] == [2]
    calibrate, verify = hold_out([np.arange(9)])
    assert calibrate[0].tolist() == list(range(6)) and verify[0].tolist() == [6, 7, 8]


def test_recovery_views_keep_a_run_consistent():
    from edgecount.convert.distill import augment_run

    frame = torch.from_numpy(clip(1, 9, 0))
    run = torch.cat([frame, frame, frame.flip(1)])  # two equal frames, then a changed one
    view = augment_run(run, torch.Generator().manual_seed(3))
    assert view.shape == run.shape and view.dtype == torch.uint8
    assert torch.equal(view[0], view[1]) and not torch.equal(view[0], view[2])
    assert not torch.equal(view[0], run[0])


@pytest.mark.parametrize("mean_shape, kept", [((1, 3, 1, 1), True), ((), False)])
def test_first_conv_stays_float_only_after_a_per_channel_normalisation(tmp_path, mean_shape, kept):
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    from edgecount.convert.quantize import channel_normalised_input, onnx_ops, openvino_ops

    graph = helper.make_graph(
        [helper.make_node("Sub", ["x", "mean"], ["centred"], name="norm"),
         helper.make_node("Conv", ["centred", "w"], ["y"], name="stem"),
         helper.make_node("Relu", ["y"], ["out"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(np.full(mean_shape, 0.5, np.float32), "mean"),
         numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    onnx_kept = channel_normalised_input(onnx_ops(onnx.load(str(path)).graph))
    assert onnx_kept == (["norm", "stem"] if kept else [])
    ov_kept = channel_normalised_input(openvino_ops(ov.Core().read_model(str(path))))
    assert bool(ov_kept) == kept and "relu" not in ov_kept


def test_the_encoder_output_normalisation_stays_float(tmp_path):
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    from edgecount.convert.quantize import kept_nodes, onnx_ops, openvino_ops, output_tail

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("Flatten", ["y"], ["flat"], name="flatten"),
         helper.make_node("Gemm", ["flat", "g"], ["emb"], name="linear"),
         helper.make_node("ReduceL2", ["emb"], ["norm"], name="l2", keepdims=1, axes=[1]),
         helper.make_node("Div", ["emb", "norm"], ["out"], name="unit")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w"),
         numpy_helper.from_array(np.ones((32, 5), np.float32), "g")])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    ops = onnx_ops(onnx.load(str(path)).graph)
    assert output_tail(ops) == ["l2", "unit"]
    assert kept_nodes(ops, encoder=False) == [] and kept_nodes(ops, encoder=True) == ["l2", "unit"]
    ov_ops = openvino_ops(ov.Core().read_model(str(path)))
    ov_tail = output_tail(ov_ops)
    assert any("l2" in name for name in ov_tail)
    assert not {op.type for op in ov_ops if op.name in ov_tail} & {"Convolution", "MatMul"}
