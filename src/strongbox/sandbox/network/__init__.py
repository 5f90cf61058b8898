"""Host side of Kata's "tcfilter" networking: read the sandbox's namespace, splice taps to it.

``interfaces`` says what the engine configured (so the guest can copy it);
``tcfilter`` gives each such interface a tap QEMU can own by fd. Neither is
wired into the launch path yet.
"""
