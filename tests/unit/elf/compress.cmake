# SPDX-License-Identifier: LGPL-2.1-or-later
# cmake -DTOOL=<path> -DCODEC=<xz|zst|gz> -DINPUT=<file> -DOUTPUT=<file> -P compress.cmake
# Compresses INPUT into OUTPUT the way kernel packages do (xz with a CRC32 check).
if(CODEC STREQUAL "xz")
  set(args --check=crc32 --lzma2=dict=1MiB -c)
elseif(CODEC STREQUAL "zst")
  set(args -q -19 -c)
elseif(CODEC STREQUAL "gz")
  set(args -n -9 -c)
else()
  message(FATAL_ERROR "unknown codec '${CODEC}'")
endif()
execute_process(COMMAND ${TOOL} ${args} ${INPUT} OUTPUT_FILE ${OUTPUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUTPUT})
  message(FATAL_ERROR "${TOOL} failed on ${INPUT}: ${rc}")
endif()
