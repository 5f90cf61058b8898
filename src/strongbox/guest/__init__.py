"""guest builds the microVM's kernel and initrd from Debian packages and caches them.

``build`` runs both builders; ``assets`` is the content-addressed store the
runtime boots from. Host-side only: nothing here goes into the guest.
"""
