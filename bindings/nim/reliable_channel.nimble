# Package
version       = "0.1.0"
author        = "Logos Messaging"
description   = "Nim binding of libreliable_channel, the Waku Reliable Channel API"
license       = "MIT OR Apache-2.0"
installFiles  = @["reliable_channel.nim"]

# Dependencies: the Nim standard library and the C library (make lib, or make install).
requires "nim >= 1.6.0"

task test, "Runs the tests (needs the C library: make lib)":
  exec "./run_tests.sh"
