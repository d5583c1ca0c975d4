# SPDX-License-Identifier: MIT
# Included by tests/CMakeLists.txt after lfp_tests is defined: the ClassBench reader and its kernel
# values (tests/support: classbench_io.hpp with liblzma, classbench_kernel.hpp) for
# tests/classbench_test.cpp and tests/datapath_compile_test.cpp.
target_link_libraries(lfp_tests PRIVATE lfp_classbench_io)
