# Third-party dependencies. LibTorch comes from the PyPI wheel in .venv
# (scripts/bootstrap.sh puts torch.utils.cmake_prefix_path on CMAKE_PREFIX_PATH).
set(TORCH_CUDA_ARCH_LIST "8.0;8.6;9.0" CACHE STRING "")
find_package(Torch REQUIRED)
# Installed binaries find libstunt beside them and LibTorch where it was linked from (.venv).
get_filename_component(STUNT_TORCH_LIB_DIR "${TORCH_LIBRARY}" DIRECTORY)
set(CMAKE_INSTALL_RPATH "$ORIGIN/../lib;${STUNT_TORCH_LIB_DIR}")
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
# Compresses the PNG charts of bench reports.
find_package(ZLIB REQUIRED)
# Our kernels' at::parallel_for is ATen's inline OpenMP loop: without -fopenmp it runs on one
# thread. LibTorch's own libgomp serves it at run time (one OpenMP runtime per process).
find_package(OpenMP REQUIRED COMPONENTS CXX)

# CUDA: compiles and links without a GPU present.
set(STUNT_HAVE_CUDA OFF)
if(NOT STUNT_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${STUNT_CUDA_ARCHITECTURES})
    set(CMAKE_CUDA_STANDARD 17)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(STUNT_HAVE_CUDA ON)
  elseif(STUNT_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "STUNT_WITH_CUDA=ON but no CUDA compiler was found; install the CUDA toolkit "
                        "in /usr/local/cuda or configure with -DSTUNT_WITH_CUDA=OFF")
  endif()
endif()

# oneDNN: libtorch_cpu embeds its own; a separate one is used only when found.
set(STUNT_HAVE_ONEDNN OFF)
if(NOT STUNT_WITH_ONEDNN STREQUAL "OFF")
  find_package(dnnl CONFIG QUIET)
  if(dnnl_FOUND)
    set(STUNT_HAVE_ONEDNN ON)
  elseif(STUNT_WITH_ONEDNN STREQUAL "ON")
    message(FATAL_ERROR "STUNT_WITH_ONEDNN=ON but oneDNN was not found (apt-get install libdnnl-dev), "
                        "or configure with -DSTUNT_WITH_ONEDNN=OFF")
  endif()
endif()
message(STATUS "stunt: CUDA kernels ${STUNT_HAVE_CUDA} (${STUNT_CUDA_ARCHITECTURES}), oneDNN ${STUNT_HAVE_ONEDNN}")
