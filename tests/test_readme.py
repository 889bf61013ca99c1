"""The README is what a newcomer meets first: its snippets run as written,
it stays short, it links only to files in the repository, and the licence it
names is there."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
PYTHON_BLOCKS = re.findall(r'```python\n(.*?)```', README, flags=re.S)


def test_readme_has_runnable_snippets_and_stays_short():
    assert len(PYTHON_BLOCKS) >= 2
    assert len(README.splitlines()) < 300


@pytest.mark.parametrize('index', range(len(PYTHON_BLOCKS)))
def test_readme_python_snippet_runs_as_written(index, tmp_path):
    script = tmp_path / f'snippet_{index}.py'
    script.write_text(PYTHON_BLOCKS[index])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                            env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip(), 'a snippet should print what it computed'


def test_readme_links_point_inside_the_repository():
    assert '../shared' not in README
    for target in re.findall(r'\]\(([^)#]+)(?:#[^)]*)?\)', README):
        if target.startswith('http'):
            continue
        assert (ROOT / target).exists(), f'README links to missing {target}'


def test_license_file_matches_setup_cfg():
    setup_cfg = (ROOT / 'setup.cfg').read_text()
    assert 'license = Apache-2.0' in setup_cfg
    assert 'Apache License' in (ROOT / 'LICENSE').read_text()
