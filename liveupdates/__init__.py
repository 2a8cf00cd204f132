"""liveupdates: news feeds in, real-time story updates out."""

__version__ = "0.1.0"
