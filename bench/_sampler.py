"""Peak memory of a process tree, sampled from /proc while a step runs."""

from __future__ import annotations

import os
import threading

from _stats import MB, mb


SAMPLE_INTERVAL = 0.02

PSS_EVERY = 25  # samples: PSS about every 0.5 s

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list:
    """Direct children of ``pid`` (every thread's children file: a thread that forks owns its children)."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _children_by_scan(pid: int) -> list:
    """The fallback when the kernel has no children files: every /proc/N/stat's parent field."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(name))
    return found


HAS_CHILDREN_FILES = os.path.exists("/proc/self/task/%d/children" % os.getpid())


def _rss(pid: int) -> int:
    try:
        with open("/proc/%d/statm" % pid) as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: shared pages split between their users, so a tree's sum counts them once."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> list:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


_OWN_CMDLINE = _cmdline(os.getpid())


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return str(pid)


def _exe(pid: int) -> str:
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


class TreeSampler(threading.Thread):
    """Samples, every ``interval`` seconds, the RSS of ``root`` and all its descendants: the peak of the sum
    (``tree_peak``; ``tree_pss_peak`` the same in PSS, sampled less often), the peak of the largest single
    process (``single_peak``), each process's own peak (by a short name), and — when ``is_module(cmdline,
    exe)`` picks out a process — the peak of that process alone (``module_peak``) and of that process with its
    descendants (``module_tree_peak``, e.g. with its zstd)."""

    def __init__(self, root: int, is_module=None, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.is_module = is_module
        self.interval = interval
        self.tree_peak = 0
        self.tree_pss_peak = 0
        self._pss_taken_at = 0
        self.single_peak = 0
        self.module_peak = 0
        self.module_tree_peak = 0
        self.samples = 0
        self.processes: dict = {}  # pid -> {"name": ..., "peak": bytes, "module": bool}
        self._stop_event = threading.Event()

    def _describe(self, pid: int) -> dict:
        described = self.processes.get(pid)
        exe = _exe(pid)
        # Looked at again after an exec (bash running its last command in place), or when first seen between
        # fork and exec (still the bench's command line) or while its command line could not be read.
        if described is None or described["exe"] != exe or described["unsure"]:
            argv = _cmdline(pid)
            name = " ".join(os.path.basename(part) if index == 0 else part for index, part in enumerate(argv[:2]))
            module = bool(self.is_module and argv and self.is_module(argv, exe))
            # A new image after exec starts a new peak; the fork image before it was its parent's pages.
            peak = described["peak"] if described and described["exe"] == exe else 0
            described = self.processes[pid] = {"name": name[:60] or "[%s]" % _comm(pid), "peak": peak,
                                               "module": module,
                                               "exe": exe, "unsure": not argv or argv == _OWN_CMDLINE}
        return described

    def sample(self) -> None:
        list_children = _children if HAS_CHILDREN_FILES else _children_by_scan
        total = 0
        module_total = 0
        alive = []
        stack = [(self.root, False)]
        while stack:
            pid, inside_module = stack.pop()
            rss = _rss(pid)
            if rss == 0 and pid != self.root:
                continue  # gone, or a zombie
            alive.append(pid)
            described = self._describe(pid)
            described["peak"] = max(described["peak"], rss)
            total += rss
            self.single_peak = max(self.single_peak, rss)
            inside_module = inside_module or described["module"]
            if described["module"]:
                self.module_peak = max(self.module_peak, rss)
            if inside_module:
                module_total += rss
            stack.extend((child, inside_module) for child in list_children(pid))
        # PSS costs ~1.3 ms a process (the kernel walks the page tables), RSS ~0.03 ms: PSS only when the RSS sum
        # passes its peak by 4 MB and every PSS_EVERY samples, so the sampler stays a small load.
        if total > self._pss_taken_at + 4 * MB or self.samples % PSS_EVERY == 0:
            self.tree_pss_peak = max(self.tree_pss_peak, sum(_pss(pid) for pid in alive))
            self._pss_taken_at = max(self._pss_taken_at, total)
        self.tree_peak = max(self.tree_peak, total)
        self.module_tree_peak = max(self.module_tree_peak, module_total)
        self.samples += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def top_processes(self, count: int = 6) -> list:
        """The largest processes seen, by their own peak: [name, MB, is-module]."""
        ranked = sorted(self.processes.values(), key=lambda described: -described["peak"])[:count]
        return [[described["name"], mb(described["peak"]), described["module"]] for described in ranked]
