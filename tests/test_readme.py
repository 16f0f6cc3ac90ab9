import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_documents_every_environment_variable_the_settings_read():
    settings_source = (ROOT / "project" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings_source))
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in read if f"`{name}`" not in readme)
    assert len(read) > 20 and not missing
