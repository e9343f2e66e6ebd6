"""Keys and certificates: a local PKI (root CA -> issuing CA -> unit certificates, a TSA, CRLs)
created by ``docsign init``, and PKCS#12 import for units that bring their own certificate."""
