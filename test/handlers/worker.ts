export { handleTask } from '../../handlers/worker';
