# Warning flags shared by every first-party target.
function(modgraph_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual
    -Wno-missing-field-initializers)  # designated initialisers may omit defaulted fields
  # Under ThreadSanitizer GCC flags every inlined std::atomic_thread_fence
  # (-Wtsan), which Asio headers contain; the tsan preset builds Asio without them.
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
  if(MODGRAPH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
