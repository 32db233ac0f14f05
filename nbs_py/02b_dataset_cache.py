# %% [markdown]
# # Datasets larger than memory
# > One memory-mapped cache made once from many OGBench files; batches and goals sampled uniformly from all of it, never across an episode.

# %%
#| default_exp cache

# %%
#| export
from __future__ import annotations

import fcntl
import json
import mmap
import os
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from fastcore.basics import patch
from tqdm import tqdm

from mac.core import write_json
from mac.data import DatasetError

# %%
#| hide
import tempfile

from fastcore.test import test_close, test_eq, test_fail


# %% [markdown]
# OGBench's large datasets (the paper's headline setting, Table 1) come as many files: 100 files of 1000
# trajectories (1M transitions each) for 100M transitions, each with a `-val` twin (chapter 12 generates them,
# `mac_sweep --generate`). At 28-dimensional float32 observations, 100M rows are 11 GB of observations alone, and the
# oracle representations and actions add more: more than this project's 24 GB machines should hold in RAM next to
# the networks. The official code keeps one file in memory and switches to another every 1000 steps (paraphrased
# from its training loop), so the batches of any 1000 consecutive updates come from 1% of the data.
#
# Here every batch is drawn uniformly from *all* files, with memory that does not grow with the dataset:
#
# 1. **Build once.** `build_cache` reads the files one at a time and writes each key (`observations`, `actions`,
#    `terminals`, and any other array the files hold, such as `qpos`, or only the `keys` a user asks for: chapter 9b
#    leaves out `qvel`, which nothing reads) into one `.npy` file per key, integers in the smallest type that holds them
#    (OGBench stores 0/1 button states as int64; int8 holds them, an eighth of the bytes), plus the first
#    and last row of every episode and the file each episode came from. It reads each array's shape from the `.npy`
#    header inside the `.npz` first, so the output files are allocated once and filled in place.
# 2. **Open as memory maps.** `open_cache` maps those `.npy` files (`np.load(mmap_mode='r')`); the operating system
#    pages in the rows a batch touches, and the resident memory is the per-episode index (two integers per episode:
#    100M rows are 100k episodes, 1.6 MB).
# 3. **Sample by episode counts.** A chunk of n actions starting at row t needs rows t … t+n inside one episode, so
#    an episode of length L offers L − n starts. Drawing u uniformly from the total count and locating it in the
#    cumulative counts (`searchsorted`) picks every valid start with the same probability, without listing them
#    (chapter 2a's `chunk_starts` lists them, which is 800 MB of indices at 100M rows).
# 4. **Goals from the same episode.** Goal-conditioned MAC samples goals from the future of the state's own
#    trajectory (uniformly, or geometrically with the discount), the state itself, or a random state (the issue's
#    and the official code's four kinds). Every one of them is looked up through the state's episode, so a goal
#    never comes from another trajectory, let alone another file.

# %% [markdown]
# ## Building the cache

# %% [markdown]
# Two helpers read what a file holds without loading it: each array's shape and type from the `.npy` headers inside the
# `.npz`, and the file's name, size and modification time, by which a cache knows its sources.

# %%
#| export
def _npz_shapes(path) -> dict:
    "Each array's (shape, dtype) in an .npz, read from the .npy headers without loading the data."
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.endswith('.npy'): continue
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            out[name[:-4]] = (shape, dtype)
    return out

def _sources(files) -> list[dict]:
    return [dict(name=Path(f).name, size=os.path.getsize(f), mtime_ns=os.stat(f).st_mtime_ns) for f in files]


# %% [markdown]
# `build_cache` is the entry point. Runs started together on one dataset (the seeds of a sweep) take a file lock beside
# the cache, so that one builds while the others wait and then reuse it.

# %%
#| export
FLOATS = ('float32', 'float16')

def build_cache(files, cache_dir, progress: bool = True, keys=None, floats: str = 'float32') -> Path:
    """Concatenate OGBench .npz files into one memory-mappable .npy per key, with an episode index; atomic, made once.
    `keys`: only these arrays (with `observations` and `terminals`; default: every array the files share). Integer
    arrays are stored in the smallest integer type that holds all their values (OGBench's int64 button states: int8);
    float arrays as `floats`: 'float32' (OGBench's) or 'float16' (half the bytes, rounded to 11 significant bits)."""
    files = [Path(f) for f in files]
    if not files: raise DatasetError('build_cache needs at least one .npz file')
    if floats not in FLOATS: raise ValueError(f"floats must be one of {', '.join(map(repr, FLOATS))}, got {floats!r}")
    cache_dir = Path(cache_dir); cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.with_name(cache_dir.name + '.lock'), 'w') as lock:   # runs started together: one builds, the others wait, then reuse
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_cache(files, cache_dir, progress, keys, floats)


# %% [markdown]
# Integer arrays are stored in the smallest integer type that holds all their values (OGBench's int64 button states fit
# in int8), found by one pass over that array alone.

# %%
#| export
def _compact_int(files, key):
    "The smallest integer dtype that holds every value of `key` in `files` (one pass over that array alone)."
    lo, hi = 0, 0
    for f in files:
        with np.load(f) as z: a = z[key]; lo, hi = min(lo, int(a.min(initial=0))), max(hi, int(a.max(initial=0)))
    return next(t for t in (np.int8, np.int16, np.int32, np.int64) if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)


# %% [markdown]
# Before building, `_reuse` looks for a finished cache in the folder and checks it against the request (the rule is
# spelled out after the build below).

# %%
#| export
def _reuse(files, cache_dir: Path, want, floats: str) -> bool:
    "Whether `cache_dir` already holds this cache; a cache of other files, keys or float type is refused, untouched."
    if not (cache_dir / 'manifest.json').exists(): return False
    man = json.loads((cache_dir / 'manifest.json').read_text())
    if man['sources'] != _sources(files):
        raise DatasetError(f'{cache_dir} holds a cache of other files (or of older versions of them): nothing was changed. '
                           f'Delete that folder to rebuild it, or choose another cache_dir')
    if want and not set(want) <= set(man['keys']):
        raise DatasetError(f'{cache_dir} caches {", ".join(man["keys"])}, not {", ".join(sorted(set(want) - set(man["keys"])))}: '
                           f'delete that folder to rebuild it with them')
    if man.get('floats', 'float32') != floats:
        raise DatasetError(f'{cache_dir} stores its float arrays as {man.get("floats", "float32")}, not {floats}: nothing was changed. '
                           f'Delete that folder to rebuild it, or choose another cache_dir')
    return True


# %% [markdown]
# float16 storage (**Half-precision floats** below) rounds each float array as it is copied, and records the largest
# rounding error of each column and the column's range, which the manifest reports.

# %%
#| export
def _half(f, k, a, err, lo, hi) -> np.ndarray:
    "`a` (key `k` of file `f`) as float16, refused if not finite or beyond float16's range; tracks each column's largest error and range."
    if not np.isfinite(a).all():
        raise DatasetError(f'{f}: {k!r} holds {int((~np.isfinite(a)).sum())} non-finite values (NaN or infinity): the file is broken; make it again')
    if np.abs(a).max() > np.finfo(np.float16).max:
        raise DatasetError(f'{f}: {k!r} holds values beyond float16\'s range (|x| ≤ 65504; here {np.abs(a).max():.4g}): '
                           f"build this cache with floats='float32'")
    h = a.astype(np.float16); err[k] = np.maximum(err[k], np.abs(h.astype(np.float32) - a).max(0))
    lo[k], hi[k] = np.minimum(lo[k], a.min(0)), np.maximum(hi[k], a.max(0))
    return h


# %% [markdown]
# The build itself: check that the files agree in keys and widths, write each key into one `.npy` memory map under a
# `.partial` folder, file by file, with an index of episodes (first row, last row, file), and rename the folder into
# place only when everything is written. A file whose last row does not end an episode is refused, since its last
# episode would run into the next file.

# %% [markdown]
# The build's steps, in the order it takes them. First what the files hold: the keys cached (those asked for, else
# those every file holds) must have the same width in every file and one row per `terminals` row, since each key
# becomes one array of all the files' rows; `observations` and `terminals` must be there.

# %%
#| export
def _cache_layout(files, want) -> tuple[list, list, list]:
    "Each file's array shapes, the keys to cache (`want`, else all) and each file's rows; refused unless the files agree."
    shapes = [_npz_shapes(f) for f in files]
    have = set.intersection(*(set(s) for s in shapes))
    if 'terminals' not in have or 'observations' not in have:
        raise DatasetError(f"{files[0]}: an OGBench dataset needs 'observations' and 'terminals' (found {', '.join(shapes[0])})")
    if want and not set(want) <= have:
        raise DatasetError(f'{files[0]}: the cache was asked for {", ".join(sorted(set(want) - have))}, which these files do not all hold')
    keys = want or sorted(have)
    rows = [s['terminals'][0][0] for s in shapes]
    for f, s, n in zip(files, shapes, rows):
        bad = [k for k in keys if s[k][0][0] != n or s[k][0][1:] != shapes[0][k][0][1:]]
        if bad: raise DatasetError(f'{f}: arrays {bad} do not match the first file in length or width')
    return shapes, keys, rows



# %% [markdown]
# How each key is stored: integer arrays in the fewest bytes that hold their values (`_compact_int`), floats as float16
# when asked, anything else as it is in the files.

# %%
#| export
def _cache_dtypes(files, shapes, keys, floats: str) -> dict:
    "The stored dtype of each key."
    return {k: _compact_int(files, k) if np.issubdtype(shapes[0][k][1], np.integer) and np.dtype(shapes[0][k][1]).itemsize > 1
               else np.dtype(np.float16) if floats == 'float16' and np.issubdtype(shapes[0][k][1], np.floating) else shapes[0][k][1] for k in keys}



# %% [markdown]
# Then the copy, file after file into the memory maps, with the episode index made on the way: an episode is first row
# to terminal row, and every file must end on a terminal row.

# %%
#| export
def _copy_files(files, keys, rows, out: dict, half: list, err: dict, lo: dict, hi: dict, progress: bool) -> np.ndarray:
    "Copy the files' arrays into the memory maps `out` (float16 keys through `_half`); returns the episodes: (first row, last row, file)."
    firsts, lasts, owners, at = [], [], [], 0
    for i, f in enumerate(tqdm(files, desc='caching', disable=not progress)):
        with np.load(f) as z:
            ends = np.flatnonzero(z['terminals'])
            if len(ends) == 0 or ends[-1] != rows[i] - 1:
                raise DatasetError(f'{f}: its last row does not end an episode (terminals), so episodes would cross files')
            for k in keys:
                a = z[k]
                if k in half and len(a): a = _half(f, k, a, err, lo, hi)
                out[k][at:at + rows[i]] = a
        firsts.append(at + np.r_[0, ends[:-1] + 1]); lasts.append(at + ends); owners.append(np.full(len(ends), i))
        at += rows[i]
    return np.stack([np.concatenate(firsts), np.concatenate(lasts), np.concatenate(owners)], 1).astype(np.int64)



# %% [markdown]
# `_build_cache` strings the steps together under the `.partial` folder, writes the episode index and the manifest
# last, and renames the folder into place.

# %%
#| export
def _build_cache(files, cache_dir: Path, progress: bool, want=None, floats: str = 'float32') -> Path:
    "Build the cache under `<cache_dir>.partial`, then rename it into place (unless an identical one is there)."
    want = None if want is None else sorted(set(want) | {'observations', 'terminals'})
    if _reuse(files, cache_dir, want, floats): return cache_dir   # already built
    shapes, keys, rows = _cache_layout(files, want)
    tmp = cache_dir.with_name(cache_dir.name + '.partial')   # a killed build leaves only this, which the next one replaces
    shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir(parents=True)
    dtypes = _cache_dtypes(files, shapes, keys, floats)
    half = [k for k in keys if dtypes[k] == np.float16]
    err = {k: np.zeros(shapes[0][k][0][1:]) for k in half}                    # per column: the largest |stored − original|, …
    lo = {k: np.full(shapes[0][k][0][1:], np.inf) for k in half}; hi = {k: -lo[k] for k in half}   # … and the column's range
    out = {k: np.lib.format.open_memmap(tmp / f'{k}.npy', mode='w+', dtype=dtypes[k], shape=(sum(rows), *shapes[0][k][0][1:])) for k in keys}
    episodes = _copy_files(files, keys, rows, out, half, err, lo, hi, progress)
    for m in out.values(): m.flush()
    del out
    np.save(tmp / 'episodes.npy', episodes)
    rounding = {k: float(err[k].max(initial=0)) for k in half}                                   # the largest error of each key, and
    rounding_of_range = {k: float(np.max(err[k] / np.where(hi[k] > lo[k], hi[k] - lo[k], np.inf), initial=0)) for k in half}  # of a column's range
    write_json(tmp / 'manifest.json', dict(sources=_sources(files), keys=keys, rows=int(sum(rows)), floats=floats, rounding=rounding, rounding_of_range=rounding_of_range,
                                           built_at=time.strftime('%Y-%m-%dT%H:%M:%S%z')))
    shutil.rmtree(cache_dir, ignore_errors=True); tmp.rename(cache_dir)
    return cache_dir


# %% [markdown]
# A cache remembers the name, size and modification time of every source file: asking for a cache of other files
# in the same folder is refused rather than silently served from the old one, and a build that is killed leaves
# only a `.partial` folder, which the next build replaces.

# %% [markdown]
# ## Sampling from it

# %% [markdown]
# An opened cache samples what chapter 9b needs: chunk starts uniform over every row whose chunk stays inside its
# episode, goal rows of each kind, and rows gathered from the memory maps.

# %%
#| export
@dataclass
class DatasetCache:
    "A built cache, memory-mapped: `arrays[key]` are np.memmap rows; `first`, `last`, `file` index the episodes."
    arrays: dict
    first: np.ndarray
    last: np.ndarray
    file: np.ndarray
    sources: list
    io_threads: int = 0                                        # gather rows in this many threads (0: one); see `open_cache`
    preload_s: float | None = None                             # seconds spent reading the files into the page cache at open (None: not read)
    _starts: dict = field(default_factory=dict, repr=False)   # n → (counts, cumulative counts), made once per chunk length

    def __len__(self): return len(next(iter(self.arrays.values())))

    def chunk_starts(self, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
        "`size` rows t, uniform over every t whose rows t … t+n lie in one episode."
        if n not in self._starts:   # an episode of L rows offers L - n starts
            counts = np.maximum(self.last - self.first + 1 - n, 0); self._starts[n] = counts, np.cumsum(counts)
        counts, cum = self._starts[n]
        if cum[-1] == 0: raise DatasetError(f'no episode has more than {n} rows')
        u = rng.integers(0, cum[-1], size)
        ep = np.searchsorted(cum, u, side='right')
        return self.first[ep] + u - (cum[ep] - counts[ep])

    def take(self, key: str, rows) -> np.ndarray:
        "`arrays[key][rows]`; with `io_threads`, slices of the rows are read in parallel, so that reads from disk overlap."
        a = self.arrays[key]
        if self.io_threads <= 1 or len(rows) < 1024: return a[rows]
        return np.concatenate(list(_pool(self.io_threads).map(a.__getitem__, np.array_split(np.asarray(rows), self.io_threads))))

    def episode_of(self, rows) -> np.ndarray:
        return np.searchsorted(self.last, rows)   # the first episode whose last row is ≥ row



# %% [markdown]
# `open_cache` memory-maps the arrays and decides how to read them: a cache that fits in memory is read through once so
# that batches come from the page cache; a larger one is read in 16 threads without read-ahead (see **Reading rows from
# disk** below).

# %%
#| export
@lru_cache(maxsize=None)
def _pool(k: int) -> ThreadPoolExecutor: return ThreadPoolExecutor(k, thread_name_prefix='mac-cache')

def _mem_available() -> int:
    "Bytes the kernel says it can give without swapping (Linux's MemAvailable; elsewhere half the physical RAM)."
    try:
        with open('/proc/meminfo') as f: return next(int(l.split()[1]) * 1024 for l in f if l.startswith('MemAvailable:'))
    except (OSError, StopIteration): return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2

def _read_through(paths, progress: bool) -> float:
    "Read files once, sequentially, so that the kernel keeps their pages in its cache; returns the seconds taken."
    t0, buf = time.time(), bytearray(1 << 24)
    with tqdm(total=sum(os.path.getsize(p) for p in paths), unit='B', unit_scale=True, desc='reading the cache into memory', disable=not progress) as bar:
        for p in paths:
            with open(p, 'rb', buffering=0) as f:
                while k := f.readinto(buf): bar.update(k)
    return time.time() - t0

def open_cache(cache_dir, io_threads: int | None = None, preload: bool | None = None, progress: bool = False) -> DatasetCache:
    """Memory-map a cache made by `build_cache`. A cache that fits in 3/4 of the available memory is read through once
    (`preload`) so that batches come from memory; a larger one is read with 16 threads and no read-ahead (None: decide)."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / 'manifest.json').exists():
        raise DatasetError(f'{cache_dir} is not a finished cache (no manifest.json): build it with build_cache(files, {str(cache_dir)!r})')
    man = json.loads((cache_dir / 'manifest.json').read_text())
    first, last, file = np.load(cache_dir / 'episodes.npy').T
    arrays = {k: np.load(cache_dir / f'{k}.npy', mmap_mode='r') for k in man['keys']}
    fits = sum(a.nbytes for a in arrays.values()) <= 0.75 * _mem_available()
    if io_threads is None: io_threads = 0 if fits else 16
    if preload is None: preload = fits
    if io_threads and hasattr(mmap, 'MADV_RANDOM'):
        for a in arrays.values(): a._mmap.madvise(mmap.MADV_RANDOM)   # one page per fault: read-ahead is wasted on random rows
    took = _read_through([cache_dir / f'{k}.npy' for k in man['keys']], progress) if preload else None
    return DatasetCache(arrays, first, last, file, man['sources'], io_threads, took)


# %% [markdown]
# Goal rows for chapter 9b's goal sampling, of four kinds (`current` is the row itself). `traj` and `geom` follow the
# official code's trajectory goal sampling: `traj` is uniform on the rows after t (official: from idx+1 to the
# episode's end), `geom`: an offset k ≥ 1 with P(k) = (1 − γ)γ^(k−1), clipped to the episode's last row (paraphrase of
# its sampler; the rule that a future goal is at least one step ahead is its choice). `random` is uniform over all
# rows of all files: such a goal is from another trajectory on purpose (the negative goals of goal-conditioned value
# learning).

# %%
#| export
@patch
def goals(self: DatasetCache, rows, kind: str, rng: np.random.Generator, gamma: float = 0.99) -> np.ndarray:
    "A goal row for each row: 'current', 'traj' (uniform on its strict future), 'geom' (future, Geometric(1 − γ)) or 'random'."
    rows = np.asarray(rows)
    if kind == 'current': return rows.copy()
    if kind == 'random': return rng.integers(0, len(self), len(rows))
    last = self.last[self.episode_of(rows)]
    if kind == 'traj':   # uniform on rows t+1 … last (t itself on an episode's last row)
        lo = np.minimum(rows + 1, last); return lo + (rng.random(len(rows)) * (last - lo + 1)).astype(np.int64)
    if kind == 'geom': return np.minimum(rows + rng.geometric(1 - gamma, len(rows)), last)
    raise ValueError(f"goal kind must be 'current', 'traj', 'geom' or 'random', got {kind!r}")



# %% [markdown]
# The checks below build a cache from three small synthetic files (episodes of random lengths, each row numbered so
# that every check can see which row it got), then test what the design promises.

# %%
def _fake_files(folder, lengths_per_file, width=3, seed=0):
    "npz files like OGBench's: observations numbered by their global row, terminals on every episode's last row."
    rng, row, paths = np.random.default_rng(seed), 0, []
    for i, lengths in enumerate(lengths_per_file):
        n = sum(lengths); term = np.zeros(n, bool); term[np.cumsum(lengths) - 1] = True
        obs = (row + np.arange(n))[:, None].repeat(width, 1).astype(np.float32)
        p = Path(folder) / f'fake-{i:03d}.npz'
        np.savez(p, observations=obs, actions=rng.standard_normal((n, 2)).astype(np.float32), terminals=term, qpos=obs[:, :1])
        paths.append(p); row += n
    return paths

tmp = Path(tempfile.mkdtemp())
lengths = [[5, 12, 3], [20], [7, 7, 9, 4]]
files = _fake_files(tmp, lengths)
c = open_cache(build_cache(files, tmp / 'cache', progress=False))
flat = np.concatenate([np.load(f)['observations'] for f in files])
test_eq(np.asarray(c.arrays['observations']), flat)                                    # the concatenation, in file order
assert all(isinstance(a, np.memmap) for a in c.arrays.values())                        # mapped, not loaded
test_eq(sorted(c.arrays), ['actions', 'observations', 'qpos', 'terminals'])
test_eq((c.last - c.first + 1).tolist(), sum(lengths, []))
test_eq(c.file.tolist(), [0, 0, 0, 1, 2, 2, 2, 2])
# only the keys asked for (with observations and terminals), integers in the smallest type that holds them, values unchanged
for f in files:
    with np.load(f) as z: np.savez(f.with_name('int-' + f.name), **dict(z), buttons=np.arange(len(z['terminals'])) % 3 - 1)   # int64 in -1..1
ints = sorted(tmp.glob('int-*.npz'))
ci = open_cache(build_cache(ints, tmp / 'cache-int', progress=False, keys=['buttons', 'actions']))
test_eq(sorted(ci.arrays), ['actions', 'buttons', 'observations', 'terminals'])
test_eq(ci.arrays['buttons'].dtype, np.int8)
test_eq(np.asarray(ci.arrays['buttons']), np.concatenate([np.load(f)['buttons'] for f in ints]))
test_fail(lambda: build_cache(ints, tmp / 'cache-int', progress=False, keys=['qpos']), contains='delete that folder to rebuild it')
test_fail(lambda: build_cache(ints, tmp / 'cache-x', progress=False, keys=['qvel']), contains='do not all hold')

# %%
rng = np.random.default_rng(1); n = 4
t = c.chunk_starts(n, 200_000, rng)
ep = c.episode_of(t)
assert (t + n <= c.last[ep]).all() and (t >= c.first[ep]).all()                        # rows t … t+n in one episode
valid = np.concatenate([np.arange(a, b - n + 1) for a, b in zip(c.first, c.last) if b - a >= n])
test_eq(np.unique(t), valid)                                                             # every valid start is drawn …
freq = np.bincount(t, minlength=len(c))[valid] / len(t)
assert np.abs(freq * len(valid) - 1).max() < 0.05, freq * len(valid)                    # … with the same probability
test_fail(lambda: c.chunk_starts(30, 1, rng), contains='no episode has more than 30 rows')

# %%
rows = c.chunk_starts(1, 50_000, rng)
for kind in ('current', 'traj', 'geom'):
    g = c.goals(rows, kind, rng)
    assert (c.episode_of(g) == c.episode_of(rows)).all() and (g >= rows).all(), kind   # same episode, never the past
test_eq(c.goals(rows, 'current', rng), rows)
g = c.goals(rows, 'traj', rng); assert (g == c.last[c.episode_of(rows)]).any() and (g == rows + 1).any()   # both ends reachable …
assert (g > rows).all()                                                                  # … and never the state itself (official: idx+1 … final)
on_last = c.last[:3]; test_eq(c.goals(on_last, 'traj', rng), on_last)                  # an episode's last row has only itself
far = c.first[3] + 0 * rows[:1].repeat(100_000)                                        # episode 3 has 20 rows: offsets rarely clip
k = c.goals(far, 'geom', rng, gamma=0.8) - far
ks = np.arange(1, 19); w = 0.2 * 0.8 ** (ks - 1)                                     # P(k) = (1 − γ) γ^(k−1), k = 1 … 18
assert abs(k[k < 19].mean() - (ks * w).sum() / w.sum()) < 0.05 and abs((k == 19).mean() - 0.8 ** 18) < 0.005   # the rest clips to the last row
assert (c.episode_of(c.goals(rows, 'random', rng)) != c.episode_of(rows)).mean() > 0.5   # random: across episodes, on purpose
test_fail(lambda: c.goals(rows, 'future', rng), contains="goal kind must be")

# %% [markdown]
# **Reading rows from disk.** While the cache fits in the page cache, a batch's rows come from memory. When it does not
# (100M transitions are 25 GB even in the benchmark's lean synthetic layout, and about 50 GB with everything OGBench's
# puzzle-3x3 files hold, more than this project's 23 GB machines), every sampled row is a random read from disk, and
# two things matter: the kernel's default read-ahead fetches 128 KB around each page fault, wasted on random rows
# (`madvise(MADV_RANDOM)` asks for one page), and one thread waits for one read at a time while disks serve many in
# parallel (16 reader threads). With both, a batch of 1024 goal-conditioned chunks from a cold 100M cache took about
# 0.1 s instead of about 1 s (`results/gc_data_bench/`, runs 1 and 2). In memory, threads only add overhead, so
# `open_cache` turns both on only for a cache larger than 3/4 of the memory the kernel reports available. A cache
# that fits is instead read through once at open, sequentially, at the disk's streaming speed (`preload`; its seconds
# are kept in `preload_s`), so that a run's batches come from memory from its first step instead of page fault by page
# fault; reading an already cached file costs only a memory copy. `take` is the gather every batch uses.

# %%
big = open_cache(tmp / 'cache', io_threads=4)
r = rng.integers(0, len(big), 5000)
test_eq(big.take('observations', r), np.asarray(c.arrays['observations'])[r])            # the same rows, in order
test_eq(open_cache(tmp / 'cache').io_threads, 0)                                          # a small cache: one thread …
assert open_cache(tmp / 'cache').preload_s is not None and open_cache(tmp / 'cache', preload=False).preload_s is None   # … read through at open
_avail = _mem_available; _mem_available = lambda: 1000                                   # a machine whose memory cannot hold it:
small = open_cache(tmp / 'cache'); _mem_available = _avail
test_eq((small.io_threads, small.preload_s), (16, None))                                   # 16 reader threads, nothing read ahead
test_eq(small.take('observations', r), np.asarray(c.arrays['observations'])[r])

# %% [markdown]
# **Half-precision floats.** The cache's float arrays can be stored as float16 (`floats='float16'`), half the bytes of
# OGBench's float32: 100M puzzle-3x3 rows take about 13 GB instead of 25 GB in the benchmark's layout, which fits in
# the page cache of a 23 GB machine, where float32 does not. float16 keeps 11 significant bits, so a value (of
# magnitude above 6·10⁻⁵, below which the absolute error is at most 3·10⁻⁸) is stored with a relative error of at most
# 2⁻¹¹ ≈ 0.05% (for a cube position of 0.5 m, about 0.24 mm); its range ends at 65504, and a file holding a larger value
# is refused rather than stored as infinity (a non-finite value is refused as a broken file). What matters to the
# networks is the error against a column's spread, since observations are min-max normalised per column: a column that
# sits near 100 and varies by 0.01 would be rounded in steps of 0.06, larger than its spread. So the manifest records,
# per key, the largest rounding error met (`rounding`) and the largest error as a share of its column's range
# (`rounding_of_range`), for the user to check before training. Batches are turned back into float32 when they are
# read (chapter 9b), so the networks never see float16. It is a choice the user makes (the default stays
# float32, exactly OGBench's numbers), and a cache remembers it: asking a float16 cache for float32 is refused.
# Measured on this project's 2-core, 23 GB machine (`results/gc_data_bench/`, run 3, `tools/gc_data_bench.py --floats
# float16 --interleaved`): the 13 GB float16 cache of 100M rows is read through at open (33 s from disk) and then
# samples batches at 0.63× the speed of a 1M-row cache, the two timed in alternation in one process (timed in separate
# processes minutes apart, as run 2 was, the same caches gave 0.69× and 0.36×: on a loaded machine only the interleaved
# figure compares like with like). The 25 GB float32 cache cannot stay in this machine's memory; run 2 timed it, in
# separate processes from a cold page cache, at 0.07× the 1M rate.

# %%
c16 = open_cache(build_cache(files, tmp / 'cache16', progress=False, floats='float16'))
acts = np.concatenate([np.load(f)['actions'] for f in files])
test_eq({k: a.dtype for k, a in c16.arrays.items()}, dict(actions=np.float16, observations=np.float16, qpos=np.float16, terminals=np.bool_))
test_eq(np.asarray(c16.arrays['actions']), acts.astype(np.float16))                      # numpy's rounding to nearest, nothing else
test_eq(np.asarray(c16.arrays['observations']), flat)                                     # small integers are exact in float16
man = json.loads((tmp / 'cache16' / 'manifest.json').read_text())
test_eq(man['rounding']['actions'], float(np.abs(acts.astype(np.float16).astype(np.float32) - acts).max()))
assert 0 < man['rounding']['actions'] <= np.abs(acts).max() * 2 ** -11 and man['rounding']['observations'] == 0
rng_ = acts.max(0) - acts.min(0)
test_close(man['rounding_of_range']['actions'], float((np.abs(acts.astype(np.float16).astype(np.float32) - acts).max(0) / rng_).max()), eps=1e-9)
test_eq(man['floats'], 'float16'); test_eq(json.loads((tmp / 'cache' / 'manifest.json').read_text())['rounding'], {})
test_fail(lambda: build_cache(files, tmp / 'cache16', progress=False), contains='stores its float arrays as float16, not float32')
test_fail(lambda: build_cache(files, tmp / 'cache16b', progress=False, floats='bfloat16'), contains="floats must be one of 'float32', 'float16'")
huge = Path(tmp) / 'huge.npz'; z = dict(np.load(files[1])); z['actions'][3, 1] = 7e4; np.savez(huge, **z)
test_fail(lambda: build_cache([files[0], huge], tmp / 'cache16c', progress=False, floats='float16'), contains="beyond float16's range")
assert not (tmp / 'cache16c').exists()
test_eq(np.asarray(open_cache(build_cache([files[0], huge], tmp / 'cache32c', progress=False)).arrays['actions'])[-len(z['actions']) + 3, 1], 7e4)
z['actions'][3, 1] = np.nan; np.savez(huge, **z)
test_fail(lambda: build_cache([files[0], huge], tmp / 'cache16d', progress=False, floats='float16'), contains='1 non-finite values')

# %% [markdown]
# Refusals, and what they leave intact: a cache of other (or changed) files is not served, and a file whose last
# row does not end an episode is refused before anything is renamed into place.

# %%
before = (tmp / 'cache' / 'observations.npy').read_bytes()
test_fail(lambda: build_cache(files[:2], tmp / 'cache', progress=False), contains='holds a cache of other files')
test_eq((tmp / 'cache' / 'observations.npy').read_bytes(), before)
test_eq(build_cache(files, tmp / 'cache', progress=False), tmp / 'cache')                # same files: nothing to do
cut = Path(tmp) / 'cut.npz'; z = dict(np.load(files[1])); z['terminals'][-1] = False; np.savez(cut, **z)
test_fail(lambda: build_cache([files[0], cut], tmp / 'cache2', progress=False), contains='does not end an episode')
assert not (tmp / 'cache2').exists()
test_fail(lambda: open_cache(tmp / 'cache2'), contains='not a finished cache')

# %% [markdown]
# Several runs started together on one dataset (the seeds of a sweep) share one cache: a file lock beside it lets one
# process build while the others wait, and they then find it built. Here the lock is held by hand, and a build in a
# thread waits for it:

# %%
import fcntl, threading
hold = open(tmp / 'cache3.lock', 'w'); fcntl.flock(hold, fcntl.LOCK_EX)
th = threading.Thread(target=build_cache, args=(files, tmp / 'cache3'), kwargs=dict(progress=False)); th.start(); th.join(0.5)
assert th.is_alive() and not (tmp / 'cache3').exists()                                  # waiting, nothing written
fcntl.flock(hold, fcntl.LOCK_UN); hold.close(); th.join(30)
test_eq(len(open_cache(tmp / 'cache3')), len(c))
shutil.rmtree(tmp)

# %% [markdown]
# Chapter 9b builds the goal-conditioned batches on this cache: oracle goal representations computed from the
# cached `qpos` and button states of the sampled rows only, and Table 6's goal mixes. Its benchmark
# (`tools/gc_data_bench.py`, results in `results/gc_data_bench/`) measures batch speed and memory at 1M, 10M and 100M rows,
# and chapter 10's `cache_floats='float16'` (`mac_train --cache-floats float16`) trains from a float16 cache.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
