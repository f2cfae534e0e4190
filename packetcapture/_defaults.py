"""Values the CLI parsers and the selector need, kept free of imports so both stay cheap.

The modules that own these values (``packetcapture.bpf``, ``packetcapture.backends``,
``packetcapture.pcap``, ``packetcapture.model``) re-export them from here.
"""

__all__ = ["DEFAULT_CAPTURE_DIR", "DEFAULT_SNAPLEN", "NAMESPACE_LABEL"]

#: Default snap length: keep whole packets (what tcpdump and Calico use).
DEFAULT_SNAPLEN = 262144
#: Felix's default ``captureDir``.
DEFAULT_CAPTURE_DIR = "/var/log/calico/pcap"
#: Implicit label Calico adds to every workload endpoint: the endpoint's namespace.
NAMESPACE_LABEL = "projectcalico.org/namespace"
