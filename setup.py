"""Build shim: the project metadata lives in pyproject.toml; this file only reads the version and the console
scripts from nbdev's settings.ini, so that one file (settings.ini) holds both."""
from configparser import ConfigParser
from pathlib import Path

from setuptools import setup

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent / 'settings.ini', encoding='utf-8')
scripts = [s.strip() for s in cfg.get('DEFAULT', 'console_scripts', fallback='').split() if s.strip()]
setup(version=cfg.get('DEFAULT', 'version'), entry_points={'console_scripts': scripts})
