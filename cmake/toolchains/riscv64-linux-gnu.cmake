# Cross build for riscv64 Linux: clang-19 (GCC 12 has no RVV 1.0 intrinsics) with the headers and
# libraries of Debian's g++-riscv64-linux-gnu, linked statically so that qemu-riscv64 runs the
# programs without a sysroot:
#   cmake -S . -B build-rv -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/riscv64-linux-gnu.cmake \
#         -DMIXQ_BUILD_PYTHON=OFF -DMIXQ_KERNEL_TEST=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_CXX_COMPILER clang++-19)
set(CMAKE_CXX_COMPILER_TARGET riscv64-linux-gnu)
# The portable code targets RV64GC; the rvv unit adds V with its own flags (CMakeLists.txt).
set(CMAKE_CXX_FLAGS_INIT "-march=rv64gc")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_FIND_ROOT_PATH /usr/riscv64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-riscv64)
