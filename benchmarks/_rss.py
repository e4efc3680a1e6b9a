"""Peak memory of a benchmark's child process, measured in the child.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong measure there: Linux keeps it across ``fork`` and
``exec``, so a child started by a parent that holds 500 MiB reports at least 500 MiB whatever it uses itself.
``VmHWM`` of ``/proc/self/status`` belongs to the process's own address space, which ``exec`` replaces.
"""

from __future__ import annotations

#: Python source defining ``peak_mib()`` (the process's own peak RSS in MiB), to paste into a child's script
PEAK_RSS_SOURCE = '''
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
'''
