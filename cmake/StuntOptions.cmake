# Build options. Optional components default to AUTO: used when found at configure time.
set(CMAKE_CXX_STANDARD 17)  # LibTorch 2.11 is C++17; 2.13+ would need C++20
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)


option(STUNT_BUILD_TESTS "Build the test suite" ON)
option(STUNT_BUILD_BENCHMARKS "Build the Google Benchmark microbenchmarks" ON)
set(STUNT_WITH_CUDA AUTO CACHE STRING "Compile the CUDA kernels (AUTO, ON, OFF)")
set(STUNT_WITH_ONEDNN AUTO CACHE STRING "Use a separate oneDNN for CPU kernels (AUTO, ON, OFF)")
set_property(CACHE STUNT_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set_property(CACHE STUNT_WITH_ONEDNN PROPERTY STRINGS AUTO ON OFF)
# No GPU to detect at build time: the architectures the mission names are explicit.
# sm_80 = A100, sm_86 = A10, sm_90 = H100/H200.
set(STUNT_CUDA_ARCHITECTURES "80;86;90" CACHE STRING "CUDA architectures to compile for")

find_program(STUNT_CCACHE ccache)
if(STUNT_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${STUNT_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${STUNT_CCACHE})
endif()
