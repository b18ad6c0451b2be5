//go:build !rc_pkgconfig

package reliablechannel

// Built against the in-tree library (make lib): the generated header in include/ and
// target/release/libreliable_channel.so, found at run time through the rpath. Set CGO_CFLAGS /
// CGO_LDFLAGS to point elsewhere (they come first), or build with -tags rc_pkgconfig to use an
// installed copy through pkg-config.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -lreliable_channel -Wl,-rpath,${SRCDIR}/../../target/release
import "C"
