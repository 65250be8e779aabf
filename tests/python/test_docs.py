"""The README's first Python example runs as written: its scale.tile and its Python block are
read from README.md and run in a fresh folder; docs/PYTHON.md's error example gives what it
says."""
import os
import re
import subprocess
import sys

from conftest import REPO
import tile


def blocks(path, lang):
    """The fenced code blocks of a Markdown file whose fence names lang ("" for none)."""
    out, current, fence_lang = [], None, None
    with open(path) as f:
        for line in f:
            if line.startswith("```"):
                if current is None:
                    current, fence_lang = [], line[3:].strip()
                else:
                    if fence_lang == lang:
                        out.append("".join(current))
                    current = None
            elif current is not None:
                current.append(line)
    return out


def test_readme_python_example(tmp_path):
    readme = os.path.join(REPO, "README.md")
    scale = next(b for b in blocks(readme, "") if b.lstrip().startswith("// y = alpha * x + y"))
    (tmp_path / "scale.tile").write_text(scale)
    example = next(b for b in blocks(readme, "python") if "tile.load(\"scale.tile\")" in b)
    code = example + "\nassert (y.sum(axis=1) > 0.999).all()\nprint('ok')\n"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"), TILE_DEVICE="vm")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_python_md_error_example():
    text = open(os.path.join(REPO, "docs", "PYTHON.md")).read()
    m = re.search(r'print\(e\.diagnostics\[0\]\)\s+# (.*)', text)
    assert m
    try:
        tile.program("kernel f(x: tensor<f32>[N]) grid(1) { x[0] = y; }", "f.tile", "vm").kernel("f")
    except tile.CompileError as e:
        assert str(e.diagnostics[0]) == m.group(1).strip()
    else:
        raise AssertionError("no CompileError")
