"""``python -m specml compare`` end to end, in a subprocess."""

import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
METHANOL = SHARED / "data" / "nist-ir" / "methanol.jdx"


def _run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "specml", "compare", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "HOME": str(cwd)},
    )


def test_compare_methanol_with_itself(tmp_path):
    png = tmp_path / "overlay.png"
    proc = _run(METHANOL, METHANOL, "--out", png, "--range", "500", "4000", "--step", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in proc.stdout.splitlines()
        if line.count("│") == 3
    }
    assert table["PCC"] == "1.000"
    assert table["SIS"] == "1.000"
    assert table["cosine"] == "1.000"
    assert table["WD (cm-1)"] == "0.00"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compare_malformed_file_one_line_error(tmp_path):
    bad = tmp_path / "bad.jdx"
    bad.write_text(
        "##TITLE=bad\n##DATA TYPE=INFRARED SPECTRUM\n##XUNITS=1/CM\n##YUNITS=ABSORBANCE\n"
        "##FIRSTX=1000\n##LASTX=1010\n##NPOINTS=6\n##XYDATA=(X++(Y..Y))\n1000 1 2 x!\n"
    )
    proc = _run(METHANOL, bad, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "bad.jdx" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "overlay.png").exists()


def test_compare_missing_and_non_ir_files(tmp_path):
    proc = _run(METHANOL, tmp_path / "absent.jdx", cwd=tmp_path)
    assert proc.returncode != 0 and proc.stderr.strip() == f"error: {tmp_path / 'absent.jdx'}: no such file"
    ms = SHARED / "data" / "jcamp-suite" / "other" / "ethanol_ms.jdx"
    proc = _run(ms, METHANOL, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().endswith("not an infrared spectrum (DATA TYPE: MASS SPECTRUM)")
    assert "Traceback" not in proc.stderr


TANNIC_RAMAN = SHARED / "data" / "jcamp-suite" / "other" / "tannic_acid.jdx"


def test_compare_raman_spectra_and_refuse_mixing_techniques(tmp_path):
    import json

    proc = _run(TANNIC_RAMAN, TANNIC_RAMAN, "--raman", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["technique"] == "raman" and result["range_cm1"] == [100.0, 4000.0]
    assert result["pcc"] > 0.999 and result["wd_cm1"] < 1e-6
    # a Raman file is not an IR spectrum, and an IR file is not a Raman one
    proc = _run(TANNIC_RAMAN, METHANOL, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "tannic_acid.jdx" in proc.stderr
    proc = _run(TANNIC_RAMAN, METHANOL, "--raman", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "methanol.jdx" in proc.stderr
