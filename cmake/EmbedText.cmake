# cmake -DIN=file -DOUT=file.cpp [-DSYMBOL=name] -P EmbedText.cmake
# Writes a C++ source defining `std::string_view outbound::embedded::<SYMBOL>()` with IN's bytes
# (default symbol: the file name with non-identifier characters as '_'), as a char array (no
# string-literal length limits, no delimiter that the text could contain).
file(READ "${IN}" content HEX)
if(NOT SYMBOL)
  get_filename_component(SYMBOL "${IN}" NAME)
  string(MAKE_C_IDENTIFIER "${SYMBOL}" SYMBOL)
endif()
string(LENGTH "${content}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/EmbedText.cmake; do not edit.\n"
     "#include <string_view>\n\nnamespace outbound::embedded {\n"
     "namespace {\nconstexpr unsigned char kData[] = {${bytes} 0};\n}  // namespace\n"
     "std::string_view ${SYMBOL}() {\n  return {reinterpret_cast<const char*>(kData), ${size}};\n}\n"
     "}  // namespace outbound::embedded\n")
