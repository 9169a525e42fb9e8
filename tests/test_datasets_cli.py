"""The dataset layer through the real command line (`python -m pybench ...` as a subprocess):
`list`, `datasets info` on every kind of source, and every user error as one line, exit 2."""

from __future__ import annotations

import gzip
import shutil
import socket
import zipfile

from PIL import Image


def test_list_prints_the_datasets(run_cli):
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    assert "mnist" in result.stdout and "digits" in result.stdout and ".npz" in result.stdout


def test_info_digits(run_cli):
    result = run_cli("datasets", "info", "digits", "--test-fraction", "0.25", "--split-seed", "2")
    assert result.returncode == 0, result.stderr
    assert "train: images (1347, 1, 28, 28) uint8" in result.stdout and "fingerprint: " in result.stdout


def test_info_mnist(run_cli, data_dir):
    result = run_cli("datasets", "info", "mnist", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert "train: images (60000, 1, 28, 28) uint8" in result.stdout
    assert "0: 980, 1: 1135" in result.stdout


def test_info_folder_zip_csv_npz(run_cli, image_folder, nih_zip, data_dir, tmp_path):
    folder = run_cli("datasets", "info", image_folder, "--image-size", "10", "--test-fraction", "0.4")
    assert folder.returncode == 0 and "(9, 3, 10, 10)" in folder.stdout and "circle: 3" in folder.stdout
    archive = run_cli("datasets", "info", nih_zip(), "--binary-negative", "No Finding", "--grayscale")
    assert archive.returncode == 0 and "No Finding, Finding" in archive.stdout
    with zipfile.ZipFile(nih_zip(name="extract.zip")) as bundle:
        bundle.extractall(tmp_path / "extracted")
    csv = run_cli("datasets", "info", tmp_path / "extracted" / "Data_Entry.csv", "--binary-negative", "No Finding")
    assert csv.returncode == 0 and "(19, 1, 32, 32)" in csv.stdout
    # The shared PneumoniaMNIST is a modified copy (3,882 of the 4,708 train images): its MD5 is
    # not medmnist.INFO's, so it needs --no-checksum, and says so.
    npz = run_cli("datasets", "info", data_dir / "pneumoniamnist" / "pneumoniamnist.npz", "--no-checksum")
    assert npz.returncode == 0 and "val: images (524, 1, 28, 28)" in npz.stdout
    assert "normal: 388, pneumonia: 3494" in npz.stdout and "a modified copy, accepted with --no-checksum" in npz.stdout


def test_missing_path(cli_error, tmp_path):
    cli_error("datasets", "info", tmp_path / "nowhere.zip", fragments=("nowhere.zip",))


def test_bad_image_size_and_test_fraction(cli_error):
    cli_error("datasets", "info", "digits", "--image-size", "-3", fragments=("--image-size", "-3"))
    cli_error("datasets", "info", "digits", "--image-size", "big", fragments=("--image-size", "big"))
    cli_error("datasets", "info", "digits", "--test-fraction", "1.5", fragments=("--test-fraction", "1.5"))


def test_mnist_checksum_mismatch_and_truncation(cli_error, mnist_copy):
    labels = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-1] + b"\x00"))
    cli_error("datasets", "info", "mnist", "--data-dir", mnist_copy, "--no-cache",
              fragments=("t10k-labels-idx1-ubyte.gz", "checksum mismatch", "expected ", "got "))
    images = mnist_copy / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:5000])
    cli_error("datasets", "info", "mnist", "--data-dir", mnist_copy, "--no-cache",
              fragments=("train-images-idx3-ubyte.gz", "truncated"))


def test_mnist_offline(cli_error, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli_error("datasets", "info", "mnist", "--data-dir", tmp_path / "empty",
              env={"PYBENCH_MNIST_MIRRORS": f"http://127.0.0.1:{port}/"},
              fragments=(str(tmp_path / "empty" / "mnist"), "train-images-idx3-ubyte.gz", "digits"))


def test_folder_errors(cli_error, image_folder, tmp_path):
    cli_error("datasets", "info", image_folder, fragments=("different sizes", "--image-size"))
    (image_folder / "square" / "broken.jpg").write_bytes(b"not a jpeg")
    cli_error("datasets", "info", image_folder, "--image-size", "8", fragments=("square/broken.jpg",))
    (image_folder / "empty").mkdir()
    cli_error("datasets", "info", image_folder, "--image-size", "8", fragments=("empty has no images",))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("L", (4, 4)).save(flat / "a.png")
    cli_error("datasets", "info", flat, fragments=("flat has no class sub-folders",))


def test_stratify_impossible(cli_error, image_folder):
    shutil.rmtree(image_folder / "triangle")
    for path in list((image_folder / "square").iterdir())[1:]:
        path.unlink()
    cli_error("datasets", "info", image_folder, "--image-size", "8",
              fragments=("shapes", "cannot make a stratified split"))


def test_manifest_errors(cli_error, nih_zip, tmp_path):
    archive = nih_zip()
    cli_error("datasets", "info", archive, fragments=("nih.zip:Data_Entry.csv", "row 3", "--binary-negative"))
    cli_error("datasets", "info", archive, "--label-col", "Diagnosis",
              fragments=("Diagnosis", "Image Index, Finding Labels, Patient Age"))
    ghost = tmp_path / "ghost.zip"
    with zipfile.ZipFile(ghost, "w") as bundle:
        bundle.writestr("list.csv", "Image Index,Finding Labels\nmissing_001.png,A\n")
    cli_error("datasets", "info", ghost, fragments=("ghost.zip:list.csv", "row 1", "missing_001.png"))
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as bundle:
        # Enough rows for the split (made before decoding), so the images' decoding is reached.
        names = [f"x{i}.png" for i in range(10)]
        bundle.writestr("list.csv", "Image Index,Finding Labels\n" + "".join(f"{n},{'AB'[i % 2]}\n"
                                                                         for i, n in enumerate(names)))
        for name in names:
            bundle.writestr(f"imgs/{name}", b"\x89PNG garbage")
    cli_error("datasets", "info", broken, fragments=("broken.zip:imgs/x", "cannot decode image"))
    two = nih_zip(name="two.zip", extra={"extra.csv": "a,b\n"})
    cli_error("datasets", "info", two, fragments=("two.zip", "--manifest", "Data_Entry.csv, extra.csv"))
