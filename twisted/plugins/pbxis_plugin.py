"""``twistd pbxis``: the Twisted application plugin.

It only parses options, loads and validates the configuration, and hands it to
:func:`pbxis.service.make_service`. A bad configuration stops the start with one line
on stderr and exit status 2, before anything listens or connects.
"""

from __future__ import annotations

import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config FILE] [--check]"
    longdesc = (
        "Run pbxis: one AMI connection to Asterisk, digested per-agent events streamed to "
        "browsers (SSE, WebSocket, long-poll) and a command API for the CRM. Without --config "
        "(or with a config that has no [ami] table) pbxis runs the demo on its embedded "
        "simulated Asterisk. The configuration keys are documented in the sample file "
        "printed by --sample-config."
    )
    optParameters = [
        ["config", "c", None, "Path of the TOML configuration file."],
    ]
    optFlags = [
        ["check", None, "Validate the configuration, print a summary and exit."],
        ["sample-config", None, "Print a sample configuration with every key commented, and exit."],
        [
            "gc-bursts",
            None,
            "Also freeze the objects bursts of connections leave behind (one full collection per "
            "doubling of the heap instead of many; each stalls streams ~100 ms at 1,000 clients).",
        ],
    ]

    def postOptions(self) -> None:
        from pbxis.config import SAMPLE_PATH, ConfigError, load_config

        if self["sample-config"]:
            sys.stdout.write(SAMPLE_PATH.read_text("utf-8"))
            raise SystemExit(0)
        try:
            self.config = load_config(self["config"])
            from pbxis.service import check_supported

            check_supported(self.config)
        except ConfigError as e:
            sys.stderr.write(f"pbxis: configuration error: {e}\n")
            raise SystemExit(2) from None
        if self["check"]:
            cfg = self.config
            if cfg.demo:
                target = "embedded simulator (demo)"
            elif cfg.pbx_tables:  # [[pbx]] tables: each PBX's endpoint by name
                target = ", ".join(f"{p.name}={p.ami.client_endpoint}" for p in cfg.pbxes)
            else:
                target = cfg.ami.client_endpoint
            sys.stdout.write(f"pbxis: {cfg.source} is valid; AMI: {target}; HTTP: {cfg.http.listen}\n")
            raise SystemExit(0)


@implementer(IServiceMaker, IPlugin)
class PbxisServiceMaker:
    tapname = "pbxis"
    description = "Asterisk call center on the web: AMI to per-agent SSE/WebSocket/long-poll streams."
    options = Options

    def makeService(self, options: Options):  # type: ignore[no-untyped-def]
        from pbxis.service import make_service

        # The daemon owns its process: it may freeze the collector (an embedding program may not).
        return make_service(options.config, freeze_gc=True, gc_bursts=bool(options["gc-bursts"]))


serviceMaker = PbxisServiceMaker()
