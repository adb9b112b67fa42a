// echo: emits every payload back unchanged (an empty payload gives one empty
// output).
import { Event, emit, onEvent } from "../../../sdk-guest/assemblyscript/assembly/index";
export { wasmesh_abi_v1, wasmesh_input, wasmesh_process } from "../../../sdk-guest/assemblyscript/assembly/index";

onEvent((ev: Event): i32 => {
  emit(ev.payload);
  return 0;
});
