"""docsign: 控辍保学 (keeping every child in compulsory school) document and e-signature service."""

__version__ = "0.1.0"
