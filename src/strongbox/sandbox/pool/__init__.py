"""The warm VM pool: running, warmed template clones handed to new sandboxes.

``server`` is the pool process (``strongbox factory serve``), ``keeper`` the
process that owns one pooled VM for its whole life, ``take`` what a sandbox's
owner does to get one, ``adopted`` the :class:`~strongbox.hypervisor.base.VM`
it then holds, ``wire`` the messages between them.
"""
