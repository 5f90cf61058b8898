"""oci is strongbox's reading of the OCI runtime specification (1.x): a bundle's config.json.

Modules (import the one you need; this package imports nothing on its own, because
the guest imports it under emulation where every module costs):

    spec      SpecError, load_bundle(), validate() and typed accessors
    sizing    vm_size(): guest RAM and vCPUs derived from the spec's resource limits
    defaults  default_spec(): the config.json `strongbox spec` writes, like `runc spec`
    names     the closed vocabularies of the spec (capabilities, rlimits, seccomp, ...)

The rules themselves live in private modules, one per spec section (``_config``,
``_process``, ``_linux``, ``_resources``) built from the field readers in ``_check``.

Standard library only: the same code runs on the host and in the guest.
"""
