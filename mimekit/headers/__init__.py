"""Header codecs: RFC 2047 words, RFC 2231 parameters, addresses, folding, dates."""
