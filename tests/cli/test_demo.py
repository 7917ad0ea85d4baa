"""`pathattn demo` runs every built stage on a small synthetic cohort, and a re-run resumes."""

from pathattn.cli.main import main
from pathattn.io.bags import find_bags, read_bag
from pathattn.io.manifest import read_manifest


def test_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--n-slides", "2", "--encoder", "test_resnet", "--workers", "1"]
    assert main(args) == 0
    assert "demo finished" in capsys.readouterr().out
    bags = find_bags(out / "extract")
    assert sorted(bags) == ["slide_000", "slide_001"]
    for path in bags.values():
        bag = read_bag(path)
        assert len(bag) > 50 and bag.coords is not None and bag.attrs["encoder"] == "test_resnet"
    assert main(args) == 0  # everything is finished: the re-run only skips
    assert {row["status"] for row in read_manifest(out / "tile" / "manifest.csv")} == {"skipped"}
    assert {row["status"] for row in read_manifest(out / "extract" / "manifest.csv")} == {"skipped"}
