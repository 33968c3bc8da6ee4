export { handleTask } from '../../handlers/backup';
