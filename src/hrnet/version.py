"""The package version, in a module of its own so that any module can read it without importing the
package face (which imports nearly everything: reading it from there made an import circle)."""

__version__ = "0.2.0"
