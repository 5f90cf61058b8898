"""Configuration files in the shapes found in the wild, for round-trip tests.

Each dict maps a test id to the file's bytes (``None``: no file). Every
shape must survive install then uninstall byte for byte.
"""

from __future__ import annotations

CONTAINERD: dict[str, bytes | None] = {
    "missing": None,
    "empty": b"",
    "newline-only": b"\n",
    "blank-no-newline": b"  ",
    "comment-only": b"# containerd config\n",
    "v2-default": (
        b'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause:3.9"\n'
        b'  [plugins."io.containerd.grpc.v1.cri".containerd]\n'
        b'    default_runtime_name = "runc"\n'
        b'    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
        b'      runtime_type = "io.containerd.runc.v2"\n'),
    "v2-no-trailing-newline": b'version = 2\nroot = "/var/lib/containerd"',
    "v2-crlf": b'# managed\r\nversion = 2\r\n\r\n[grpc]\r\n  address = "/run/c.sock"\r\n',
    "v2-crlf-no-trailing-newline": b'version = 2\r\n[grpc]\r\n  uid = 0',
    "v1-tables": b'[plugins.cri]\n  [plugins.cri.containerd]\n    snapshotter = "overlayfs"\n',
    "v1-comment-last": b'root = "/var/lib/containerd"\n# the end',
    "v3": b'version = 3\n\n[plugins."io.containerd.cri.v1.runtime".containerd]\n'
          b'  default_runtime_name = "runc"\n',
    "unicode": "# conf\u00e9 \u2028 \u65e5\u672c\nversion = 2\n".encode(),
    "tabs-and-comments": b'version = 2 # two\n\t# indented comment\n[debug]\n\tlevel = "info"\n',
}

PODMAN: dict[str, bytes | None] = {
    "missing": None,
    "empty": b"",
    "newline-only": b"\n",
    "comment-only": b"# containers.conf\n# see containers.conf(5)\n",
    "engine-only": b'[engine]\ncgroup_manager = "systemd"\n',
    "runtimes-table": b'[engine]\nevents_logger = "file"\n\n[engine.runtimes]\n'
                      b'crun = ["/usr/bin/crun", "/usr/local/bin/crun"]\n'
                      b'runc = ["/usr/bin/runc"]\n',
    "runtimes-table-empty": b"[engine.runtimes]\n",
    "runtimes-header-last-no-newline": b'[engine]\nruntime = "crun"\n[engine.runtimes]',
    "runtimes-header-comment": b'[engine.runtimes] # local runtimes\nkata = ["/opt/kata"]\n',
    "runtimes-quoted-header": b'["engine"."runtimes"]\ncrun = ["/usr/bin/crun"]\n',
    "runtimes-spaced-header": b'[ engine . runtimes ]\ncrun = ["/usr/bin/crun"]\n',
    "runtimes-indented-crlf": b'[engine]\r\n  [engine.runtimes]\r\n  crun = ["/usr/bin/crun"]\r\n',
    "crlf-no-runtimes": b'[containers]\r\nlog_size_max = -1\r\n',
    "no-trailing-newline": b'[containers]\nnetns = "host"',
    "crlf-no-trailing-newline": b'[containers]\r\nnetns = "host"',
    "unicode": "[containers]\n# \u00fcber \u2603\nlabel = false\n".encode(),
}

DOCKER: dict[str, bytes | None] = {
    "missing": None,
    "empty": b"",
    "newline-only": b"\n",
    "blank": b" \n\t\n",
    "empty-object": b"{}",
    "empty-object-newline": b"{}\n",
    "empty-object-space": b"{ }",
    "empty-object-multiline": b"{\n}\n",
    "other-keys": b'{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "10m"}\n}\n',
    "one-line": b'{"debug": true, "storage-driver": "overlay2"}',
    "runtimes-empty": b'{\n  "runtimes": {}\n}\n',
    "runtimes-empty-multiline": b'{\n  "runtimes": {\n  }\n}\n',
    "runtimes-empty-first-key": b'{"runtimes": {}, "debug": false}\n',
    "runtimes-others": b'{\n    "default-runtime": "runc",\n    "runtimes": {\n'
                       b'        "nvidia": {\n            "path": "nvidia-container-runtime",\n'
                       b'            "runtimeArgs": []\n        }\n    }\n}\n',
    "runtimes-others-one-line": b'{"runtimes": {"kata": {"path": "/opt/kata/bin/kata"}}}',
    "runtimes-first-then-others": b'{\n\t"runtimes": {\n\t\t"crun": {"path": "crun"}\n\t},\n'
                                  b'\t"debug": true\n}',
    "crlf": b'{\r\n  "bip": "10.1.0.1/24",\r\n  "runtimes": {\r\n    "crun": {"path": "crun"}'
            b'\r\n  }\r\n}\r\n',
    "crlf-no-runtimes": b'{\r\n  "experimental": true\r\n}',
    "tabs": b'{\n\t"insecure-registries": ["a:5000", "b:5000"],\n\t"mtu": 1400\n}\n',
    "tricky-strings": b'{"labels": ["x={\\"runtimes\\": {}}", "\\u00e9\\\\"], "n": -1.5e3,'
                      b' "ok": null}\n',
    "unicode": '{\n  "data-root": "/srv/d\u00f6cker"\n}\n'.encode(),
    "bom": b'\xef\xbb\xbf{\n  "debug": true\n}\n',
    "bom-blank": b"\xef\xbb\xbf\n",
    "leading-space": b'\n\n  {"debug": true}  \n\n',
    "runtimes-not-first-nested-deep": b'{"a": {"b": {"c": [1, {"d": {}}]}}, "runtimes": {\n'
                                      b'  "x": {"path": "y"}}}\n',
}
