"""Defaults the CLI parsers need, kept free of imports so building a parser stays cheap.

The modules that own these values (``packetcapture.bpf``, ``packetcapture.backends``,
``packetcapture.pcap``) re-export them from here.
"""

__all__ = ["DEFAULT_CAPTURE_DIR", "DEFAULT_SNAPLEN"]

#: Default snap length: keep whole packets (what tcpdump and Calico use).
DEFAULT_SNAPLEN = 262144
#: Felix's default ``captureDir``.
DEFAULT_CAPTURE_DIR = "/var/log/calico/pcap"
