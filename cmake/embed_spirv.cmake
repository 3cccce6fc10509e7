# Writes a SPIR-V file as a C++ byte array: cmake -DIN=<x.spv> -DOUT=<x.inc> -DNAME=<symbol> -P this.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed_spirv.cmake.\nalignas(4) const unsigned char ${NAME}[] = {\n${bytes}};\n")
