//go:build rc_pkgconfig

package reliablechannel

// Built against an installed copy (make install PREFIX=...): go build -tags rc_pkgconfig with
// PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig (and LD_LIBRARY_PATH or an rpath when PREFIX is not a
// system library directory).

// #cgo pkg-config: reliable_channel
import "C"
