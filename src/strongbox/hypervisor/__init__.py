"""hypervisor starts, drives and stops the VMM that runs one sandbox's guest.

``base`` defines what every VMM driver offers; ``qemu`` is the only driver.
"""
