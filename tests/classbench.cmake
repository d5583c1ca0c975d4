# Included by tests/CMakeLists.txt after lfp_tests is defined: the ClassBench reader for
# tests/classbench_test.cpp (header bench/classbench_io.hpp + liblzma).
if(TARGET lfp_classbench_io)
  target_link_libraries(lfp_tests PRIVATE lfp_classbench_io)
endif()
